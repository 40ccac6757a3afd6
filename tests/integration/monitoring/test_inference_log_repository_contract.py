"""One contract for the inference log's ports: the in-memory fake, SQLite and PostgreSQL.

``InferenceLogger``, ``LogIngester``, the window reads, the retention sweep,
``FeedbackStore`` and the feedback joins rely on exactly this behaviour, and the
unit tests run them on the fake; the fake must not drift from the SQL adapter.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from modelyard.monitoring import (
    FeedbackItem,
    InMemoryInferenceLogRepository,
    LabelledLogRepository,
    SqlInferenceLogRepository,
    read_window,
    write_records,
)
from modelyard.monitoring.inference_log.record import Summary
from modelyard.monitoring.inference_log.repository import (
    EntityLabel,
    KnownRequest,
    StoredBatch,
    StoredLabel,
)
from modelyard.store.database import Database


@pytest.fixture
def log(contract_db: Database | None) -> LabelledLogRepository:
    """The fake, then the SQL adapter on each backend (``contract_db``)."""
    return (
        InMemoryInferenceLogRepository()
        if contract_db is None
        else SqlInferenceLogRepository(contract_db)
    )


def batch(
    batch_id: str,
    ts_first: float,
    *,
    ts_last: float | None = None,
    deployment: str = "fraud",
    model: str = "m",
    version: int = 1,
    requests: int = 1,
    errors: int = 0,
    payload: bytes | None = None,
) -> StoredBatch:
    """A stored batch whose payload names it (the store keeps payloads as opaque bytes)."""
    last = ts_first if ts_last is None else ts_last
    summary = Summary(batch_id, deployment, model, version, ts_first, last, requests, errors)
    return StoredBatch(summary, payload if payload is not None else batch_id.encode())


def label(
    text: str,
    *,
    request_id: str | None = None,
    row: int = 0,
    entity_key: str | None = None,
    event_time: float | None = None,
    received_at: float = 1.0,
) -> StoredLabel:
    """A stored label keyed as ``FeedbackStore`` keys it."""
    key = FeedbackItem(
        0, request_id=request_id, row=row, entity_key=entity_key, event_time=event_time
    ).dedupe_key
    return StoredLabel(key, text, received_at, request_id, row, entity_key, event_time)


# -- the inference log ----------------------------------------------------------------------


def test_an_empty_log(log: LabelledLogRepository) -> None:
    assert log.deployments() == []
    assert log.latest_model("fraud") is None
    assert log.batch_payloads("fraud", 0.0, 1e12) == []
    assert log.batch_payloads("fraud", 0.0, 1e12, newest=10) == []
    assert log.delete_batches("fraud", 1e12) == 0
    log.add_batches([])
    assert log.deployments() == []


def test_a_batch_id_is_stored_once_and_the_first_payload_kept(log: LabelledLogRepository) -> None:
    log.add_batches([batch("a", 10.0, payload=b"first")])
    log.add_batches([batch("a", 10.0, payload=b"replayed"), batch("b", 11.0)])
    log.add_batches([batch("b", 11.0)])
    assert log.batch_payloads("fraud", 0.0, 100.0) == [b"first", b"b"]


def test_payloads_come_back_byte_for_byte(log: LabelledLogRepository) -> None:
    data = bytes(range(256)) * 1000 + b"\x00"
    log.add_batches([batch("big", 1.0, payload=data)])
    [stored] = log.batch_payloads("fraud", 0.0, 2.0)
    assert isinstance(stored, bytes)
    assert stored == data


def test_payloads_of_a_deployment_over_a_first_time_range_in_order(
    log: LabelledLogRepository,
) -> None:
    log.add_batches(
        [
            batch("late", 30.0),
            batch("b-tie", 20.0),
            batch("a-tie", 20.0),
            batch("early", 10.0, ts_last=25.0),
            batch("v2", 15.0, version=2),
            batch("other", 15.0, deployment="other"),
            batch("at-end", 40.0),
        ]
    )
    everything = [b"early", b"v2", b"a-tie", b"b-tie", b"late"]
    assert log.batch_payloads("fraud", 10.0, 40.0) == everything
    assert log.batch_payloads("fraud", 10.5, 40.0) == everything[1:]  # by the first time
    assert log.batch_payloads("fraud", 10.0, 30.0) == everything[:-1]  # the end is open
    assert log.batch_payloads("fraud", 0.0, 40.0, version=2) == [b"v2"]
    assert log.batch_payloads("fraud", 0.0, 40.0, version=3) == []
    assert log.batch_payloads("other", 0.0, 100.0) == [b"other"]
    assert log.batch_payloads("nobody", 0.0, 100.0) == []


def test_traffic_sums_the_batches_counts_per_bucket_and_version(
    log: LabelledLogRepository,
) -> None:
    minute = 1_000_000_020.0  # a multiple of 60: buckets are aligned on them
    log.add_batches(
        [
            batch("a", minute + 0.5, requests=3, errors=1),
            batch("b", minute + 59.9, requests=2),
            batch("c", minute + 30.0, version=2, requests=5, errors=5),
            batch("d", minute + 60.0, requests=7),
            batch("other", minute + 1.0, deployment="other", requests=100),
            batch("later", minute + 300.0, requests=100),
            batch("earlier", minute - 0.5, requests=100),
        ]
    )
    assert log.traffic("fraud", minute, minute + 120.0, 60.0) == [
        (minute, 1, 5, 1),
        (minute, 2, 5, 5),
        (minute + 60.0, 1, 7, 0),
    ]
    assert log.traffic("nobody", minute, minute + 120.0, 60.0) == []


def test_last_from_leaves_out_batches_that_ended_before_the_window(
    log: LabelledLogRepository,
) -> None:
    log.add_batches(
        [
            batch("ended", 10.0, ts_last=19.9),
            batch("reaches", 10.0, ts_last=20.0),
            batch("straddles", 15.0, ts_last=25.0),
            batch("inside", 21.0, ts_last=22.0),
        ]
    )
    assert log.batch_payloads("fraud", 0.0, 30.0, last_from=20.0) == [
        b"reaches",
        b"straddles",
        b"inside",
    ]
    pages = log.batch_pages("fraud", 0.0, 30.0, last_from=20.0, page=2)
    assert list(pages) == [[b"reaches", b"straddles"], [b"inside"]]


def test_pages_hold_what_one_read_holds_in_the_same_order(log: LabelledLogRepository) -> None:
    # ties on the first time cross page boundaries: the cursor is (ts_first, id)
    log.add_batches(
        [batch(f"b{i:02d}", float(i // 3), version=1 + i % 2) for i in range(20)]
        + [batch("other", 1.0, deployment="other")]
    )
    whole = log.batch_payloads("fraud", 0.0, 100.0)
    for size in (1, 2, 3, 7, 20, 500):
        pages = list(log.batch_pages("fraud", 0.0, 100.0, page=size))
        assert [len(p) for p in pages[:-1]] == [size] * (len(pages) - 1)
        assert [data for page in pages for data in page] == whole
    versioned = list(log.batch_pages("fraud", 1.0, 5.0, version=2, page=2))
    assert [data for page in versioned for data in page] == log.batch_payloads(
        "fraud", 1.0, 5.0, version=2
    )
    assert list(log.batch_pages("nobody", 0.0, 100.0)) == []


def test_newest_keeps_the_latest_batches_that_hold_that_many_requests(
    log: LabelledLogRepository,
) -> None:
    log.add_batches(
        [
            batch("t10", 10.0, requests=5),
            batch("t20", 20.0, requests=5),
            batch("t30-b", 30.0, requests=3),
            batch("t30-a", 30.0, requests=3),
            batch("v2", 25.0, requests=50, version=2),
        ]
    )
    fraud = ("fraud", 0.0, 100.0)
    assert log.batch_payloads(*fraud, newest=1) == [b"t30-a", b"t30-b"]  # a whole first time
    assert log.batch_payloads(*fraud, newest=6) == [b"t30-a", b"t30-b"]
    assert log.batch_payloads(*fraud, newest=7) == [b"v2", b"t30-a", b"t30-b"]
    assert log.batch_payloads(*fraud, newest=7, version=1) == [b"t20", b"t30-a", b"t30-b"]
    assert log.batch_payloads(*fraud, newest=16, version=1) == [
        b"t10",
        b"t20",
        b"t30-a",
        b"t30-b",
    ]
    assert len(log.batch_payloads(*fraud, newest=1000)) == 5  # never reached: all of them
    assert log.batch_payloads("fraud", 0.0, 25.0, newest=6) == [b"t10", b"t20"]  # in range


def test_old_batches_are_deleted_whole_and_counted_by_request(
    log: LabelledLogRepository,
) -> None:
    log.add_batches(
        [batch(f"old{i}", float(i), requests=2) for i in range(5)]
        + [
            batch("straddles", 90.0, ts_last=110.0, requests=7),
            batch("ends-at-cut", 95.0, ts_last=100.0),
            batch("new", 150.0),
            batch("other-old", 1.0, deployment="other", requests=4),
        ]
    )
    assert log.delete_batches("fraud", 100.0, chunk=2) == 10  # several transactions
    assert log.batch_payloads("fraud", 0.0, 1000.0) == [b"straddles", b"ends-at-cut", b"new"]
    assert log.delete_batches("fraud", 100.0) == 0
    assert log.batch_payloads("other", 0.0, 1000.0) == [b"other-old"]
    assert log.delete_batches("fraud", 1000.0) == 9
    assert log.deployments() == ["other"]


def test_deployments_are_listed_once_and_the_latest_model_is_by_last_time(
    log: LabelledLogRepository,
) -> None:
    log.add_batches(
        [
            batch("a", 10.0, ts_last=50.0, model="new"),
            batch("b", 40.0, ts_last=45.0, model="old"),
            batch("c", 5.0, deployment="recs", model="ranker"),
            batch("d", 6.0, deployment="recs", model="ranker"),
        ]
    )
    assert sorted(log.deployments()) == ["fraud", "recs"]
    assert log.latest_model("fraud") == "new"
    assert log.latest_model("recs") == "ranker"
    assert log.latest_model("nobody") is None


def test_threads_storing_the_same_batches_store_each_once(log: LabelledLogRepository) -> None:
    shared = [batch(f"s{i}", float(i)) for i in range(20)]

    def store(worker: int) -> None:
        for start in range(0, 20, 5):
            log.add_batches([*shared[start : start + 5], batch(f"w{worker}-{start}", 50.0)])

    threads = [threading.Thread(target=store, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    payloads = log.batch_payloads("fraud", 0.0, 100.0)
    assert len(payloads) == len(set(payloads)) == 20 + 4 * 4


def _served(request_id: str, ts: float, **fields: object) -> dict[str, object]:
    return {
        "request_id": request_id,
        "ts": ts,
        "deployment": "fraud",
        "model": "m",
        "version": 1,
        "status": 200,
        "latency_ms": 1.0,
        "rows": 1,
        **fields,
    }


def test_logged_request_ids_are_known_by_an_index_lookup(log: LabelledLogRepository) -> None:
    write_records(
        log,
        [
            _served("r1", 10.0, rows=3),
            _served("r1", 10.0, rows=3, arm="shadow", version=2),
            _served("bad", 11.0, status=422),
            _served("elsewhere", 12.0, deployment="other"),
        ],
    )
    known = log.known_requests(["r1", "bad", "elsewhere", "never"])
    assert known == {
        "r1": KnownRequest(3, 200),
        "bad": KnownRequest(1, 422),
        "elsewhere": KnownRequest(1, 200),
    }
    assert log.known_requests([]) == {}
    assert len(log.request_payloads("fraud", "r1")) == 2  # the answer's batch and the shadow's
    assert log.request_payloads("other", "r1") == []
    assert len(log.request_payloads("other", "elsewhere")) == 1


def test_the_retention_sweep_forgets_the_request_ids_it_deletes(
    log: LabelledLogRepository,
) -> None:
    write_records(log, [_served("old", 10.0)])
    write_records(log, [_served("new", 500.0)])
    assert log.delete_batches("fraud", 100.0) == 1
    assert set(log.known_requests(["old", "new"])) == {"new"}
    assert log.request_payloads("fraud", "old") == []


def test_pages_newest_first_are_the_reverse_order(log: LabelledLogRepository) -> None:
    log.add_batches([batch(f"b{n}", float(n % 4)) for n in range(10)])
    forward = [p for page in log.batch_pages("fraud", 0.0, 10.0, page=3) for p in page]
    backward = list(log.batch_pages("fraud", 0.0, 10.0, page=3, newest_first=True))
    assert [len(page) for page in backward] == [3, 3, 3, 1]
    assert [p for page in backward for p in page] == forward[::-1]


def test_records_written_read_back_as_a_window(log: LabelledLogRepository) -> None:
    records = [
        {"request_id": f"r{i}", "ts": 100.0 + i * 30, "deployment": "fraud", "model": "m",
         "version": 1 + i % 2, "status": 500 if i == 3 else 200, "latency_ms": 2.0, "rows": 1,
         "inputs": {"x": np.array([float(i)])}}
        for i in range(6)
    ]  # fmt: skip
    assert write_records(log, records) == 6
    window = read_window(log, "fraud", 100.0, 250.0)
    assert window.request_ids.tolist() == ["r0", "r1", "r2", "r3", "r4"]
    assert window.status.tolist() == [200, 200, 200, 500, 200]
    assert window.inputs["x"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert read_window(log, "fraud", 0.0, 1e9, version=2).request_ids.tolist() == [
        "r1",
        "r3",
        "r5",
    ]


# -- feedback labels ------------------------------------------------------------------------


def test_no_labels(log: LabelledLogRepository) -> None:
    assert log.put_labels([]) == {}
    assert log.request_labels({"r1"}) == {}
    assert log.request_labels(set()) == {}
    assert log.entity_labels(0.0, 1e12) == []


def test_a_label_is_new_then_unchanged_then_replaced(log: LabelledLogRepository) -> None:
    first = label("1", request_id="r1")
    assert log.put_labels([first, label('"a"', request_id="r1", row=2)]) == {}
    assert log.put_labels([label("1", request_id="r1", received_at=2.0)]) == {first.dedupe_key: "1"}
    assert log.request_labels({"r1"}) == {("r1", 0): "1", ("r1", 2): '"a"'}
    replaced = log.put_labels([label("0", request_id="r1"), label("5", request_id="r2")])
    assert replaced == {first.dedupe_key: "1"}
    assert log.request_labels(["r1", "r2", "r3"]) == {
        ("r1", 0): "0",
        ("r1", 2): '"a"',
        ("r2", 0): "5",
    }
    assert log.request_labels({"r2"}) == {("r2", 0): "5"}


def test_clicks_naming_items_on_one_request_accumulate(log: LabelledLogRepository) -> None:
    for item in ("a", "b", "a"):
        log.put_labels([label(f'{{"clicked":1,"item":"{item}"}}', request_id="r1")])
    assert log.request_labels({"r1"}) == {("r1", 0): '{"clicked":1,"items":["a","b"]}'}


def test_many_labels_in_one_call(log: LabelledLogRepository) -> None:
    many = [label(str(i), request_id=f"r{i:04d}") for i in range(1200)]
    assert log.put_labels(many) == {}
    assert log.put_labels(many[:700]) == {item.dedupe_key: item.label for item in many[:700]}
    wanted = {f"r{i:04d}" for i in range(0, 1200, 2)} | {"unknown"}
    found = log.request_labels(wanted)
    assert found == {(f"r{i:04d}", 0): str(i) for i in range(0, 1200, 2)}


def test_entity_labels_by_event_time_in_storage_order_on_a_tie(
    log: LabelledLogRepository,
) -> None:
    log.put_labels(
        [
            label('"late"', entity_key="u1", event_time=30.0),
            label('"first"', entity_key="u2", event_time=10.0),
            label('"second"', entity_key="u1", event_time=10.0),
            label('"at-end"', entity_key="u3", event_time=40.0),
            label("1", request_id="r1"),
        ]
    )
    assert log.entity_labels(10.0, 40.0) == [
        EntityLabel("u2", 10.0, '"first"'),
        EntityLabel("u1", 10.0, '"second"'),
        EntityLabel("u1", 30.0, '"late"'),
    ]
    log.put_labels([label('"corrected"', entity_key="u2", event_time=10.0, received_at=9.0)])
    assert log.entity_labels(0.0, 20.0) == [
        EntityLabel("u2", 10.0, '"corrected"'),  # a replaced label keeps its place
        EntityLabel("u1", 10.0, '"second"'),
    ]
    assert log.entity_labels(10.5, 30.0) == []
    assert log.request_labels({"u1", "u2"}) == {}  # entity keys are not request ids
