"""push over the in-memory online store and a temporary offline folder: what is written
where, duplicates, late events, whole-batch validation, every input shape."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelyard.errors import FeatureViewNotFoundError, ValidationError
from modelyard.features.definitions import (
    Aggregation,
    Entity,
    Feature,
    FeatureView,
    FileSource,
    StreamSource,
)
from modelyard.features.online.memory import InMemoryOnlineStore
from modelyard.features.online.reads import get_online_features
from modelyard.features.online.store import LatestRow
from modelyard.features.push import push, sort_arrivals, stream_view, trim_stream_events

T = 1_700_000_000.0
NOW = T + 1000
CARD = Entity("card", "card_id")
TXN = StreamSource(
    "txn",
    fields=(
        Feature("amount", "float64"),
        Feature("n", "int64"),
        Feature("shop", "string"),
        Feature("online", "bool"),
    ),
)
LAST = FeatureView(
    "last_txn", CARD, TXN, features=(Feature("amount", "float64"), Feature("shop", "string"))
)
WINDOWS = FeatureView(
    "txn_windows",
    CARD,
    TXN,
    aggregations=(Aggregation("count", "1h"), Aggregation("sum", "1h", "n")),
)
OTHER = FeatureView("profile", CARD, FileSource("p.parquet"), features=(Feature("age", "int64"),))
VIEWS = [LAST, WINDOWS, OTHER]


def event(card: str, dt: float, n: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "card_id": card,
        "event_time": T + dt,
        "amount": float(n) * 1.5,
        "n": n,
        "shop": f"s{n}",
        "online": n % 2 == 0,
        **extra,
    }


def do_push(store: InMemoryOnlineStore, tmp_path: Path, events: Any, **kwargs: Any) -> Any:
    options: dict[str, Any] = {"now": NOW, "allowed_lateness_s": 60.0, **kwargs}
    return push("txn", VIEWS, events, store=store, offline_dir=tmp_path, **options)


def offline_rows(tmp_path: Path) -> list[dict[str, Any]]:
    files = sorted((tmp_path / "txn").glob("*.parquet"))
    return [row for f in files for row in pq.read_table(f).to_pylist()]


def test_events_land_offline_and_in_every_online_view(tmp_path: Path) -> None:
    store = InMemoryOnlineStore()
    result = do_push(
        store, tmp_path, [event("c1", 0, 2, event_id="a"), event("c1", 10, 3, event_id="b")]
    )

    assert result.accepted == 2
    assert result.duplicates == ()
    assert result.too_late == ()
    assert result.offline_file is not None
    assert result.offline_file.parent == tmp_path / "txn"
    assert offline_rows(tmp_path) == [
        {
            "card_id": "c1",
            "event_time": T,
            "amount": 3.0,
            "n": 2,
            "shop": "s2",
            "online": True,
            "_created_at": NOW,
            "_event_id": "a",
        },
        {
            "card_id": "c1",
            "event_time": T + 10,
            "amount": 4.5,
            "n": 3,
            "shop": "s3",
            "online": False,
            "_created_at": NOW,
            "_event_id": "b",
        },
    ]
    assert pq.read_schema(result.offline_file).types == [
        pa.string(),
        pa.float64(),
        pa.float64(),
        pa.int64(),
        pa.string(),
        pa.bool_(),
        pa.float64(),
        pa.string(),
    ]
    got = get_online_features(
        store,
        VIEWS,
        ["c1"],
        ["last_txn:amount", "txn_windows:count_1h", "txn_windows:n_sum_1h"],
        T + 20,
    )
    assert got.columns == {"amount": [4.5], "count_1h": [2], "n_sum_1h": [5]}
    assert store.get_latest("profile", ["c1"]) == [None]


def test_a_replay_adds_nothing_anywhere(tmp_path: Path) -> None:
    store = InMemoryOnlineStore()
    events = [event("c1", 0, 1), event("c2", 5, 2)]  # ids derived from the content
    do_push(store, tmp_path, events)

    again = do_push(store, tmp_path, events)

    assert again.accepted == 0
    assert len(again.duplicates) == 2
    assert again.offline_file is None
    assert len(offline_rows(tmp_path)) == 2
    assert [len(e) for e in store.get_events("txn_windows", ["c1", "c2"], 0)] == [1, 1]


def test_a_batch_that_repeats_an_event_applies_it_once(tmp_path: Path) -> None:
    store = InMemoryOnlineStore()
    result = do_push(store, tmp_path, [event("c1", 0, event_id="x"), event("c1", 0, event_id="x")])

    assert (result.accepted, result.duplicates) == (1, ("x",))
    assert len(offline_rows(tmp_path)) == 1


def test_late_events_are_reported_and_applied_nowhere(tmp_path: Path) -> None:
    store = InMemoryOnlineStore()
    do_push(store, tmp_path, [event("c1", 100, event_id="new")])

    result = do_push(
        store,
        tmp_path,
        [
            event("c1", 40, event_id="within"),  # 60 s before the newest: allowed
            event("c1", 39, event_id="late"),
            event("c2", -5000, event_id="first-of-c2"),  # nothing seen for c2 yet
        ],
    )

    assert result.accepted == 2
    assert [(e.key, e.event_id, e.event_time, e.newest_seen) for e in result.too_late] == [
        ("c1", "late", T + 39, T + 100)
    ]
    assert {r["_event_id"] for r in offline_rows(tmp_path)} == {"new", "within", "first-of-c2"}
    ids = [e.event_id for e in store.get_events("txn_windows", ["c1"], 0)[0]]
    assert ids == ["within", "new"]
    # the latest row stays the newest event, whatever arrives after it
    assert store.get_latest("last_txn", ["c1"])[0].event_time == T + 100  # type: ignore[union-attr]
    assert result.to_dict()["too_late"] == [
        {"key": "c1", "event_id": "late", "event_time": T + 39, "newest_seen": T + 100}
    ]


def test_lateness_counts_from_earlier_events_of_the_same_batch(tmp_path: Path) -> None:
    result = do_push(
        InMemoryOnlineStore(),
        tmp_path,
        [
            event("c1", 500, event_id="a"),
            event("c1", 100, event_id="b"),
            event("c1", 460, event_id="c"),
        ],
    )

    assert result.accepted == 2
    assert [e.event_id for e in result.too_late] == ["b"]


@pytest.mark.parametrize(
    "shape", ["dicts", "columns", "pandas", "polars", "arrow"], ids=lambda s: str(s)
)
def test_every_input_shape_gives_the_same_events(tmp_path: Path, shape: str) -> None:
    rows = [event("c1", 0, 1, event_id="a"), event("c2", 1, 2, event_id="b")]
    frames: dict[str, Any] = {
        "dicts": rows,
        "columns": {name: [r[name] for r in rows] for name in rows[0]},
        "pandas": pd.DataFrame(rows),
        "polars": pl.DataFrame(rows),
        "arrow": pa.Table.from_pylist(rows),
    }
    store = InMemoryOnlineStore()

    result = do_push(store, tmp_path, frames[shape])

    assert result.accepted == 2
    assert [r["_event_id"] for r in offline_rows(tmp_path)] == ["a", "b"]
    expected = [{k: v for k, v in r.items() if k != "event_id"} for r in rows]
    assert [
        {k: v for k, v in r.items() if k not in ("_created_at", "_event_id")}
        for r in offline_rows(tmp_path)
    ] == expected


def test_timestamps_of_every_kind_become_epoch_seconds(tmp_path: Path) -> None:
    when = datetime.fromtimestamp(T, UTC)
    frame = pd.DataFrame([{**event("c1", 0), "event_time": when.replace(tzinfo=None)}])
    store = InMemoryOnlineStore()
    do_push(store, tmp_path, frame)
    do_push(store, tmp_path, [{**event("c2", 0), "event_time": when.isoformat()}])
    do_push(store, tmp_path, pl.DataFrame([{**event("c3", 0), "event_time": when}]))

    assert [r["event_time"] for r in offline_rows(tmp_path)] == [T, T, T]


def test_pandas_integers_with_missing_values_are_nullable_integers(tmp_path: Path) -> None:
    frame = pd.DataFrame([event("c1", 0, 4), {**event("c2", 0), "n": None}])
    assert frame["n"].dtype == np.float64

    do_push(InMemoryOnlineStore(), tmp_path, frame)

    assert [r["n"] for r in offline_rows(tmp_path)] == [4, None]


@pytest.mark.parametrize(
    ("events", "match"),
    [
        (
            [{**event("c1", 0), "amount": "12"}],
            r"column 'amount' \(float64\) must be a number or null, got '12' \(row 0\)",
        ),
        (
            [event("c1", 0), {**event("c1", 1), "n": 1.5}],
            r"column 'n' \(int64\) must be an integer or null, got 1.5 \(row 1\)",
        ),
        ([{**event("c1", 0), "online": "yes"}], r"'online' \(bool\) must be true or false"),
        ([{**event("c1", 0), "shop": 7}], r"'shop' \(string\) must be a string or null, got 7"),
        ([{**event("c1", 0), "card_id": None}], r"entity key 'card_id' must not be null \(row 0\)"),
        ([{**event("c1", 0), "card_id": 42}], r"entity key 'card_id' must be a string, got 42"),
        (
            [{**event("c1", 0), "event_time": None}],
            r"event time 'event_time' \(row 0\) must be a time",
        ),
        ([{**event("c1", 0), "event_time": "soon"}], r"must be a time .*got 'soon'"),
        ([{**event("c1", 0), "colour": "red"}], r"stream 'txn' has no column\(s\) \['colour'\]"),
        ([{k: v for k, v in event("c1", 0).items() if k != "n"}], r"lack column\(s\) \['n'\]"),
        ([event("c1", 0), {"card_id": "c2"}], r"event 1 has other columns than event 0"),
        ([event("c1", 0, event_id="")], r"'event_id' must be a non-empty string"),
        ("not events", r"events must be a list of dicts"),
        ([1, 2], r"event 0 must be an object"),
    ],
)
def test_a_bad_batch_is_refused_whole(tmp_path: Path, events: Any, match: str) -> None:
    store = InMemoryOnlineStore()

    with pytest.raises(ValidationError, match=match):
        do_push(store, tmp_path, events)

    assert not (tmp_path / "txn").exists()
    assert store.get_latest("last_txn", ["c1"]) == [None]
    assert store.get_latest(stream_view("txn"), ["c1"]) == [None]


def test_a_stream_no_view_reads_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(
        FeatureViewNotFoundError, match=r"no feature view reads stream 'clicks'.*\['txn'\]"
    ):
        push(
            "clicks",
            VIEWS,
            [],
            store=InMemoryOnlineStore(),
            offline_dir=tmp_path,
            now=NOW,
            allowed_lateness_s=1,
        )


def test_too_many_events_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="at most 2 events, got 3"):
        do_push(InMemoryOnlineStore(), tmp_path, [event("c", i) for i in range(3)], max_events=2)


def test_an_empty_push_writes_nothing(tmp_path: Path) -> None:
    result = do_push(InMemoryOnlineStore(), tmp_path, [])
    assert (result.accepted, result.offline_file) == (0, None)
    assert not (tmp_path / "txn").exists()


def test_views_keyed_by_a_field_of_the_stream(tmp_path: Path) -> None:
    shop = Entity("shop", "shop")
    by_shop = FeatureView("shop_counts", shop, TXN, aggregations=(Aggregation("count", "1h"),))
    store = InMemoryOnlineStore()
    push(
        "txn",
        [WINDOWS, by_shop],
        [event("c1", 0, 1), event("c2", 0, 1), event("c2", 1, 2)],
        store=store,
        offline_dir=tmp_path,
        now=NOW,
        allowed_lateness_s=60,
    )

    got = get_online_features(store, [by_shop], ["s1", "s2"], ["shop_counts:count_1h"], T + 5)
    assert got.columns == {"count_1h": [2, 1]}


def test_trim_keeps_what_reads_and_replays_still_need(tmp_path: Path) -> None:
    store = InMemoryOnlineStore()
    do_push(store, tmp_path, [event("c1", 0, event_id="old"), event("c1", 5000, event_id="new")])

    removed = trim_stream_events(store, "txn", VIEWS, now=T + 5000, allowed_lateness_s=60)

    assert removed == 1  # "old", from the window view (the stream's ledger)
    assert [e.event_id for e in store.get_events("txn_windows", ["c1"], 0)[0]] == ["new"]


def test_the_ledger_is_a_view_with_events_else_the_streams_own(tmp_path: Path) -> None:
    store = InMemoryOnlineStore()
    do_push(store, tmp_path, [event("c1", 0, event_id="a")])
    assert store.get_latest("txn_windows", ["c1"]) == [LatestRow(T, {})]
    assert store.get_latest(stream_view("txn"), ["c1"]) == [None]

    plain_only = InMemoryOnlineStore()
    push(
        "txn",
        [LAST],
        [event("c1", 0, event_id="a")],
        store=plain_only,
        offline_dir=tmp_path,
        now=NOW,
        allowed_lateness_s=60,
    )
    assert plain_only.get_latest(stream_view("txn"), ["c1"]) == [LatestRow(T, {})]
    assert [e.event_id for e in plain_only.get_events(stream_view("txn"), ["c1"], 0)[0]] == ["a"]
    again = push(
        "txn",
        [LAST],
        [event("c1", 0, event_id="a")],
        store=plain_only,
        offline_dir=tmp_path,
        now=NOW,
        allowed_lateness_s=60,
    )
    assert again.duplicates == ("a",)


# -- the sorting of arrivals ----------------------------------------------------------------

arrivals = st.lists(
    st.tuples(st.sampled_from("ab"), st.integers(0, 50), st.sampled_from("uvwxyz")),
    max_size=30,
)


@given(events=arrivals, cut=st.integers(0, 30), lateness=st.integers(0, 20))
def test_sorting_a_batch_whole_or_in_two_pieces_agrees(
    events: list[tuple[str, int, str]], cut: int, lateness: int
) -> None:
    keys = [k for k, _, _ in events]
    times = [float(t) for _, t, _ in events]
    ids = [i for _, _, i in events]

    whole = sort_arrivals(keys, times, ids, {}, [], lateness)
    first = sort_arrivals(keys[:cut], times[:cut], ids[:cut], {}, [], lateness)
    known = [(keys[i], ids[i]) for i in first.accepted]
    second = sort_arrivals(keys[cut:], times[cut:], ids[cut:], first.newest, known, lateness)

    assert whole.accepted == first.accepted + [cut + i for i in second.accepted]
    assert whole.duplicates == first.duplicates + [cut + i for i in second.duplicates]
    assert whole.newest == second.newest
    for position in whole.accepted:  # never older than its entity's newest minus lateness
        before = [times[i] for i in whole.accepted if i < position and keys[i] == keys[position]]
        assert not before or times[position] >= max(before) - lateness
