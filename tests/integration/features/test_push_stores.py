"""push on the real stores (SQLite, Redis): streamed values agree with the same events
rebuilt offline from the Parquet files; concurrent pushers; a failed write is redone
whole by a retry."""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from modelyard.errors import StoreError
from modelyard.features.definitions import Aggregation, Entity, Feature, FeatureView, StreamSource
from modelyard.features.online.reads import get_online_features
from modelyard.features.online.sqlite import SqliteOnlineStore
from modelyard.features.online.store import Event
from modelyard.features.push import push

Backend = Any  # conftest.py's Backend: .name, .store, .round_trips()
T = 1_700_000_000.0
CARD = Entity("card", "card_id")
TXN = StreamSource(
    "txn", fields=(Feature("amount", "float64"), Feature("n", "int64"), Feature("shop", "string"))
)
ACTIVITY = FeatureView(
    "activity",
    CARD,
    TXN,
    features=(Feature("amount", "float64"), Feature("shop", "string")),
    aggregations=(
        Aggregation("count", "10m"),
        Aggregation("sum", "1h", "n"),
        Aggregation("mean", "1h", "amount"),
        Aggregation("min", "1h", "n"),
        Aggregation("max", "1h", "amount"),
        Aggregation("distinct", "1h", "shop"),
        Aggregation("time_since_last", "1h"),
    ),
    ttl="30m",
)
REFS = [f"activity:{name}" for name in ACTIVITY.feature_names]
LATENESS = 120.0


def random_events(seed: int, n: int) -> list[dict[str, Any]]:
    """Events in arrival order: mostly increasing in time, some out of order and late."""
    rng = random.Random(seed)
    events, clock = [], T
    for i in range(n):
        clock += rng.expovariate(1 / 20)
        jitter = rng.choice([0, 0, 0, -rng.uniform(0, 100), -rng.uniform(100, 400)])
        events.append(
            {
                "card_id": rng.choice(["a", "b", "c", "d"]),
                "event_time": round(clock + jitter, 3),
                "amount": round(rng.uniform(1, 500), 2),
                "n": rng.randint(-3, 9),
                "shop": rng.choice(["s1", "s2", "s3"]),
                "event_id": f"e{i}",
            }
        )
    return events


REBUILD = """
WITH events AS (SELECT * FROM read_parquet('{glob}')), asked AS (SELECT unnest($keys) AS card_id)
SELECT asked.card_id,
  (SELECT amount FROM events e WHERE e.card_id = asked.card_id AND event_time <= $t
     AND event_time > $t - 1800 ORDER BY event_time DESC, _created_at DESC LIMIT 1),
  (SELECT shop FROM events e WHERE e.card_id = asked.card_id AND event_time <= $t
     AND event_time > $t - 1800 ORDER BY event_time DESC, _created_at DESC LIMIT 1),
  (SELECT count(*) FROM events e WHERE e.card_id = asked.card_id
     AND event_time > $t - 600 AND event_time <= $t),
  (SELECT coalesce(sum(n), 0) FROM events e WHERE e.card_id = asked.card_id
     AND event_time > $t - 3600 AND event_time <= $t),
  (SELECT avg(amount) FROM events e WHERE e.card_id = asked.card_id
     AND event_time > $t - 3600 AND event_time <= $t),
  (SELECT min(n) FROM events e WHERE e.card_id = asked.card_id
     AND event_time > $t - 3600 AND event_time <= $t),
  (SELECT max(amount) FROM events e WHERE e.card_id = asked.card_id
     AND event_time > $t - 3600 AND event_time <= $t),
  (SELECT count(DISTINCT shop) FROM events e WHERE e.card_id = asked.card_id
     AND event_time > $t - 3600 AND event_time <= $t),
  (SELECT $t - max(event_time) FROM events e WHERE e.card_id = asked.card_id
     AND event_time > $t - 3600 AND event_time <= $t)
FROM asked ORDER BY list_position($keys, asked.card_id)
"""


def test_streamed_values_agree_with_the_events_rebuilt_offline(
    real_backend: Backend, tmp_path: Path
) -> None:
    events = random_events(seed=7, n=400)
    offline = tmp_path / "offline"
    accepted = late = 0
    for start in range(0, len(events), 37):
        result = push(
            TXN,
            [ACTIVITY],
            events[start : start + 37],
            store=real_backend.store,
            offline_dir=offline,
            now=T + 10_000,
            allowed_lateness_s=LATENESS,
        )
        accepted += result.accepted
        late += len(result.too_late)
    assert accepted + late == len(events)
    assert late > 0  # the data has late events, and they are kept out of both sides

    keys = ["a", "b", "c", "d", "zz"]
    glob = f"{offline}/txn/*.parquet"
    con = duckdb.connect()
    final = max(e["event_time"] for e in events)
    for t in [T + 600, T + 2000, T + 4000, final - 30, final, final + 1000]:
        online = get_online_features(real_backend.store, [ACTIVITY], keys, REFS, t)
        rebuilt = con.execute(REBUILD.format(glob=glob), {"keys": keys, "t": t}).fetchall()
        for row, key in zip(rebuilt, keys, strict=True):
            position = keys.index(key)
            expected = dict(zip(ACTIVITY.feature_names, row[1:], strict=True))
            got = {name: online.columns[name][position] for name in ACTIVITY.feature_names}
            for name in ("amount_mean_1h", "time_since_last_1h", "amount_max_1h"):
                if expected[name] is not None:
                    assert got[name] == pytest.approx(expected[name], rel=1e-12, abs=1e-9)
                    expected[name] = got[name]
            if t < final:  # the online latest row is the newest event, not the one as of t
                expected["amount"] = got["amount"]
                expected["shop"] = got["shop"]
            assert got == expected, (t, key)


def test_concurrent_pushers_of_the_same_events_apply_each_once(tmp_path: Path) -> None:
    store = SqliteOnlineStore(tmp_path / "online.sqlite")
    events = random_events(seed=3, n=300)
    results: list[Any] = []
    start = threading.Barrier(4)

    def pusher() -> None:
        start.wait()
        for begin in range(0, len(events), 50):
            results.append(
                push(
                    TXN,
                    [ACTIVITY],
                    events[begin : begin + 50],
                    store=store,
                    offline_dir=tmp_path / "offline",
                    now=T,
                    allowed_lateness_s=1e9,
                )
            )

    threads = [threading.Thread(target=pusher) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(r.accepted for r in results) == len(events)
    assert sum(len(r.duplicates) for r in results) == 3 * len(events)
    ids = [
        i
        for f in (tmp_path / "offline" / "txn").glob("*.parquet")
        for i in pq.read_table(f)["_event_id"].to_pylist()
    ]
    assert sorted(ids) == sorted(e["event_id"] for e in events)
    store.close()


class FailingStore(SqliteOnlineStore):
    """The real SQLite store, whose event writes fail while ``failing`` is set."""

    failing = True

    def add_events(self, view: str, events: Any) -> int:
        if self.failing:
            raise StoreError("the disk is full")
        return super().add_events(view, events)


def test_a_push_that_fails_part_way_is_redone_whole_by_its_retry(tmp_path: Path) -> None:
    store = FailingStore(tmp_path / "online.sqlite")
    events = random_events(seed=5, n=20)
    options: dict[str, Any] = {
        "store": store,
        "offline_dir": tmp_path / "offline",
        "now": T,
        "allowed_lateness_s": 1e9,
    }

    with pytest.raises(StoreError, match="the disk is full"):
        push(TXN, [ACTIVITY], events, **options)
    assert store.get_latest("activity", ["a", "b", "c", "d"]) == [None] * 4  # rolled back

    store.failing = False
    result = push(TXN, [ACTIVITY], events, **options)

    assert result.accepted == 20
    files = list((tmp_path / "offline" / "txn").glob("*.parquet"))
    assert sum(pq.read_metadata(f).num_rows for f in files) == 20
    assert not list((tmp_path / "offline" / "txn").glob(".*"))  # no temporary left
    store.close()


def test_sqlite_transactions_roll_back_on_error(tmp_path: Path) -> None:
    store = SqliteOnlineStore(tmp_path / "online.sqlite")

    def write_then_fail() -> None:
        with store.transaction():
            store.put_latest("v", [("a", T, {"x": 1})])
            store.add_events("v", [Event("a", T, "e", {})])
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        write_then_fail()

    assert store.get_latest("v", ["a"]) == [None]
    assert store.get_events("v", ["a"], 0) == [[]]
    store.close()
