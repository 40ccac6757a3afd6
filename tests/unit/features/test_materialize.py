"""Materialization into the online store: latest rows, events with stable ids, trimming,
and a watermark that never moves past data actually read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelyard.errors import ValidationError
from modelyard.features import Aggregation, Entity, Feature, FeatureView, FileSource, StreamSource
from modelyard.features.materialize import (
    materialize,
    materialize_incremental,
    next_watermark,
    watermark_key,
)
from modelyard.features.offline import OfflineOptions, get_training_set
from modelyard.features.online.memory import InMemoryOnlineStore
from modelyard.features.windows import aggregate

CARD = Entity("card", "card_id", "int64")
Row = tuple[int, float, float, float]  # card, event time, created time, amount


class Source:
    """A folder of Parquet files that grows, as a batch job's output does."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files = 0
        folder.mkdir(parents=True, exist_ok=True)

    def append(self, rows: list[Row]) -> None:
        self.files += 1
        pq.write_table(
            pa.table(
                {
                    "card_id": pa.array([r[0] for r in rows], pa.int64()),
                    "ts": pa.array([r[1] for r in rows], pa.float64()),
                    "created": pa.array([r[2] for r in rows], pa.float64()),
                    "amount": pa.array([r[3] for r in rows], pa.float64()),
                }
            ),
            self.folder / f"part-{self.files:04d}.parquet",
        )

    def view(self, *, created: bool = True, **changes: object) -> FeatureView:
        fields: dict[str, object] = {
            "name": "tx",
            "entity": CARD,
            "source": FileSource(
                str(self.folder / "*.parquet"), "ts", "created" if created else None
            ),
            "features": (Feature("amount", "float64"),),
            "aggregations": (Aggregation("count", "100s"), Aggregation("sum", "100s", "amount")),
        }
        return FeatureView(**{**fields, **changes})  # type: ignore[arg-type]


@pytest.fixture
def source(tmp_path: Path) -> Source:
    return Source(tmp_path / "tx")


@pytest.fixture
def options(tmp_path: Path) -> OfflineOptions:
    return OfflineOptions(temp_dir=tmp_path / "spill", offline_dir=tmp_path / "offline")


def latest(store: InMemoryOnlineStore, *keys: str) -> list[tuple[float, float] | None]:
    return [
        None if row is None else (row.event_time, row.values["amount"])
        for row in store.get_latest("tx", list(keys))
    ]


def test_the_latest_row_per_entity_in_range_is_written(
    source: Source, options: OfflineOptions
) -> None:
    source.append([(1, 10.0, 10.0, 1.0), (1, 20.0, 20.0, 2.0), (2, 15.0, 15.0, 5.0)])
    source.append([(1, 20.0, 25.0, 3.0), (1, 40.0, 40.0, 4.0)])  # a rewrite, then a later row
    store = InMemoryOnlineStore()
    done = materialize([source.view()], store, 0.0, 30.0, options=options)
    assert latest(store, "1", "2", "3") == [(20.0, 3.0), (15.0, 5.0), None]
    assert (done[0].latest_rows, done[0].latest_written) == (2, 2)
    assert store.watermark(watermark_key(source.view())) is None  # explicit runs leave it


def test_an_older_run_never_overwrites_a_newer_value(
    source: Source, options: OfflineOptions
) -> None:
    source.append([(1, 10.0, 10.0, 1.0), (1, 20.0, 20.0, 2.0)])
    store = InMemoryOnlineStore()
    materialize([source.view()], store, None, 30.0, options=options)
    done = materialize([source.view()], store, None, 15.0, options=options)  # a backfill
    assert latest(store, "1") == [(20.0, 2.0)]
    assert (done[0].latest_rows, done[0].latest_written) == (1, 0)


def test_re_runs_are_idempotent(source: Source, options: OfflineOptions) -> None:
    source.append([(1, 10.0, 10.0, 1.0), (1, 20.0, 20.0, 2.0), (1, 20.0, 20.0, 2.0)])
    store = InMemoryOnlineStore()
    first = materialize([source.view()], store, None, 30.0, options=options)
    events = store.get_events("tx", ["1"], -np.inf)[0]
    again = materialize([source.view()], store, None, 30.0, options=options)
    assert store.get_events("tx", ["1"], -np.inf)[0] == events
    assert [e.event_id.rsplit(":", 1)[1] for e in events] == ["1", "1", "2"]  # identical rows
    assert (first[0].events_added, again[0].events_added) == (3, 0)
    assert latest(store, "1") == [(20.0, 2.0)]


def test_an_end_in_the_future_skips_nothing_later(source: Source, options: OfflineOptions) -> None:
    """feast#4222: the watermark became the (future) end date, and every run until then
    found nothing to do. Here it is the greatest created time actually read."""
    source.append([(1, 10.0, 11.0, 1.0)])
    store = InMemoryOnlineStore()
    view = source.view()
    done = materialize_incremental([view], store, 1e12, options=options)
    assert done[0].watermark == 11.0 == store.watermark(watermark_key(view))
    source.append([(1, 50.0, 51.0, 5.0), (2, 30.0, 52.0, 3.0)])  # later, and one late
    done = materialize_incremental([view], store, 1e12, options=options)
    assert latest(store, "1", "2") == [(50.0, 5.0), (30.0, 3.0)]
    assert done[0].watermark == 52.0
    assert [e.event_time for e in store.get_events("tx", ["1"], -np.inf)[0]] == [10.0, 50.0]


def test_without_a_created_column_the_watermark_is_the_latest_event_time(
    source: Source, options: OfflineOptions
) -> None:
    source.append([(1, 10.0, 0.0, 1.0), (1, 20.0, 0.0, 2.0)])
    store = InMemoryOnlineStore()
    view = source.view(created=False)
    assert materialize_incremental([view], store, 1e12, options=options)[0].watermark == 20.0
    source.append([(1, 30.0, 0.0, 3.0)])
    materialize_incremental([view], store, 1e12, options=options)
    assert latest(store, "1") == [(30.0, 3.0)]


def test_the_watermark_stays_below_rows_left_for_later(
    source: Source, options: OfflineOptions
) -> None:
    """A row created early with an event time after ``end`` is not read by this run; the
    watermark must not pass its created time, or no later run would read it."""
    source.append([(1, 10.0, 12.0, 1.0), (2, 100.0, 5.0, 9.0)])  # card 2: scheduled ahead
    store = InMemoryOnlineStore()
    view = source.view()
    done = materialize_incremental([view], store, 50.0, options=options)
    assert done[0].watermark is not None
    assert done[0].watermark < 5.0
    assert latest(store, "2") == [None]
    materialize_incremental([view], store, 150.0, options=options)
    assert latest(store, "1", "2") == [(10.0, 1.0), (100.0, 9.0)]


def test_a_re_apply_keeps_the_watermark_and_a_change_starts_over(
    source: Source, options: OfflineOptions
) -> None:
    """feast#2905: after a re-apply the next incremental run started at "now" and skipped
    data. The watermark is kept by name and definition digest: the same definition
    (rebuilt, as apply does) finds it; a changed one reads everything again."""
    source.append([(1, 10.0, 10.0, 1.0)])
    store = InMemoryOnlineStore()
    view = source.view()
    materialize([view], store, 0.0, 20.0, options=options)  # an explicit backfill first
    source.append([(1, 30.0, 30.0, 3.0)])
    reapplied = FeatureView.from_dict(view.to_dict())
    assert watermark_key(reapplied) == watermark_key(view)
    done = materialize_incremental([reapplied], store, 40.0, options=options)
    assert latest(store, "1") == [(30.0, 3.0)]
    assert done[0].watermark == 30.0
    source.append([(1, 35.0, 36.0, 4.0)])
    done = materialize_incremental(
        [FeatureView.from_dict(view.to_dict())], store, 40.0, options=options
    )
    assert done[0].latest_rows == 1
    assert done[0].watermark == 36.0
    changed = source.view(features=(Feature("amount", "float64"),), ttl="2d")
    assert watermark_key(changed) != watermark_key(view)
    done = materialize_incremental([changed], store, 40.0, options=options)
    assert done[0].latest_rows == 1
    assert done[0].events == 3


def test_events_of_the_last_window_are_added_and_older_ones_trimmed(
    source: Source, options: OfflineOptions
) -> None:
    source.append([(1, 10.0, 10.0, 1.0), (1, 150.0, 150.0, 2.0), (1, 190.0, 190.0, 4.0)])
    store = InMemoryOnlineStore()
    view = source.view()
    materialize([view], store, None, 120.0, options=options)
    assert [e.event_time for e in store.get_events("tx", ["1"], -np.inf)[0]] == [10.0]
    done = materialize([view], store, None, 1e9, options=options)  # end far ahead
    # trimmed relative to the newest event (190), not to the end
    assert [e.event_time for e in store.get_events("tx", ["1"], -np.inf)[0]] == [150.0, 190.0]
    assert done[0].events_trimmed == 1


def test_online_values_equal_the_training_set_at_the_same_time(
    source: Source, options: OfflineOptions
) -> None:
    rng = np.random.default_rng(7)
    rows = [
        (int(k), float(t), float(t + lag), float(a))
        for k, t, lag, a in zip(
            rng.integers(1, 4, 60), rng.integers(0, 300, 60), rng.integers(0, 3, 60),
            rng.normal(size=60), strict=True,
        )
    ]  # fmt: skip
    source.append(rows)
    view = source.view(ttl=None)
    store = InMemoryOnlineStore()
    now = 400.0
    materialize_incremental([view], store, now, options=options)
    refs = ["tx:amount", "tx:count_100s", "tx:amount_sum_100s"]
    offline = get_training_set(
        pa.table({"card_id": [1, 2, 3], "event_timestamp": [now] * 3}), refs, [view],
        options=options,
    ).to_pylist()  # fmt: skip
    for key, row in zip(["1", "2", "3"], offline, strict=True):
        stored = store.get_latest("tx", [key])[0]
        assert stored is not None
        assert stored.values["amount"] == row["amount"]
        events = store.get_events("tx", [key], now - 100.0)[0]
        values = aggregate(
            np.array([e.event_time for e in events]),
            {"amount": np.array([e.values["amount"] for e in events])},
            view.aggregations,
            now,
        )
        assert values["count_100s"] == row["count_100s"]
        assert values["amount_sum_100s"] == pytest.approx(row["amount_sum_100s"])


def test_pushed_events_keep_their_ids(tmp_path: Path, options: OfflineOptions) -> None:
    folder = tmp_path / "offline" / "payments"
    folder.mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "card_id": pa.array([1, 1], pa.int64()),
                "event_time": [10.0, 20.0],
                "amount": [1.0, 2.0],
                "_created_at": [21.0, 21.0],
                "_event_id": ["e1", "e2"],
            }
        ),
        folder / "0001.parquet",
    )
    stream = StreamSource("payments", fields=(Feature("amount", "float64"),))
    view = FeatureView("pay", CARD, stream, aggregations=[Aggregation("sum", "1h", "amount")])
    store = InMemoryOnlineStore()
    materialize_incremental([view], store, 100.0, options=options)
    events = store.get_events("pay", ["1"], -np.inf)[0]
    assert [(e.event_id, e.values) for e in events] == [
        ("e1", {"amount": 1.0}),
        ("e2", {"amount": 2.0}),
    ]


def test_progress_is_reported_and_offline_views_are_left_out(
    source: Source, options: OfflineOptions
) -> None:
    source.append([(k, 10.0, 10.0, 1.0) for k in range(1, 26)])
    calls: list[tuple[str, int, int]] = []
    store = InMemoryOnlineStore()
    hidden = source.view(name="hidden", online=False)
    done = materialize(
        [source.view(), hidden], store, None, 20.0, options=options,
        progress=lambda view, n, total: calls.append((view, n, total)),
    )  # fmt: skip
    assert [d.view for d in done] == ["tx"]
    assert calls[0] == ("tx", 0, 50)
    assert calls[-1] == ("tx", 50, 50)
    assert store.get_latest("hidden", ["1"]) == [None]


def test_bad_times_are_refused(source: Source, options: OfflineOptions) -> None:
    source.append([(1, 10.0, 10.0, 1.0)])
    with pytest.raises(ValidationError, match=r"start \(20.0\) is after end \(10.0\)"):
        materialize([source.view()], InMemoryOnlineStore(), 20.0, 10.0, options=options)
    with pytest.raises(ValidationError, match=r"end must be a datetime or epoch seconds"):
        materialize_incremental([source.view()], InMemoryOnlineStore(), "soon", options=options)  # type: ignore[arg-type]


def test_the_next_watermark() -> None:
    assert next_watermark(None, None, None) is None
    assert next_watermark(5.0, None, 9.0) == 5.0  # nothing read: it stays
    assert next_watermark(None, 10.0, None) == 10.0
    assert next_watermark(None, 10.0, 8.0) == np.nextafter(8.0, -np.inf)
    assert next_watermark(None, 10.0, 12.0) == 10.0
    assert next_watermark(20.0, 25.0, None) == 25.0
