"""What serving reads online equals what a training set reads offline for the same entity
and time: pushed events (some late, some replayed, some too late) on each real online
store, and a file source materialized to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelyard.config import Settings
from modelyard.features import (
    Aggregation,
    Definitions,
    Entity,
    Feature,
    FeatureRegistry,
    FeatureStore,
    FeatureView,
    FileSource,
    InMemoryDefinitionRepository,
    StreamSource,
)

NOW = 1_800_000_000.0
CARD = Entity("card", key="card_id")
PAYMENTS = StreamSource("payments", fields=(Feature("amount", "float64"),))
STATS = FeatureView(
    "card_stats",
    CARD,
    PAYMENTS,
    aggregations=(
        Aggregation("count", "1h"),
        Aggregation("sum", "10m", "amount"),
        Aggregation("mean", "1d", "amount"),
        Aggregation("max", "1d", "amount"),
    ),
)
Backend = Any  # conftest.py's Backend: .name, .store, .round_trips()
AGGREGATES = ["count_1h", "amount_sum_10m", "amount_mean_1d", "amount_max_1d"]


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def feature_store(
    backend: Backend, tmp_path: Path, views: tuple[FeatureView, ...]
) -> tuple[FeatureStore, Clock]:
    clock = Clock()
    registry = FeatureRegistry(InMemoryDefinitionRepository(), clock=clock)
    registry.apply(Definitions(entities=(CARD,), views=views))
    settings = Settings(home=tmp_path / "home")
    return FeatureStore(registry, backend.store, settings, clock=clock), clock


def both_ways(store: FeatureStore, keys: list[str], refs: list[str], at: float) -> tuple[Any, Any]:
    online = store.get_online_features({"card_id": keys}, refs, at=at)
    offline = store.get_training_set(
        pa.table({"card_id": keys, "event_timestamp": [at] * len(keys)}), refs
    ).to_pylist()
    return online.columns, {name: [row[name] for row in offline] for name in online.columns}


def test_pushed_events_read_the_same_online_and_offline(
    real_backend: Backend, tmp_path: Path
) -> None:
    store, clock = feature_store(real_backend, tmp_path, (STATS,))
    rng = np.random.default_rng(3)
    keys = [f"c{i}" for i in range(6)]
    pushed_late = 0
    for batch in range(4):
        clock.now = NOW + batch * 900.0
        # Events up to 20 minutes old, out of order: some beyond the allowed lateness
        # (5 minutes behind the newest of their card) are refused, offline as online.
        events = [
            {
                "card_id": str(rng.choice(keys)),
                "event_time": clock.now - float(rng.uniform(0, 1200)),
                "amount": round(float(rng.normal(50, 20)), 2),
                "event_id": f"b{batch}-{i}",
            }
            for i in range(60)
        ]
        result = store.push("payments", events)
        assert result.accepted + len(result.too_late) == len(events)
        pushed_late += len(result.too_late)
        assert store.push("payments", events).accepted == 0  # a replay changes nothing
    assert pushed_late > 0, "the test must cover events refused as too late"

    refs = [f"card_stats:{name}" for name in AGGREGATES]
    for after in (1.0, 300.0, 1800.0, 5000.0, 90_000.0):
        online, offline = both_ways(store, [*keys, "unknown"], refs, clock.now + after)
        assert online["count_1h"] == offline["count_1h"], after
        assert sum(online["count_1h"]) > 0 or after > 3600
        for name in AGGREGATES[1:]:
            assert online[name] == pytest.approx(offline[name], nan_ok=True), (after, name)


def test_a_materialized_file_source_reads_the_same_online_and_offline(
    real_backend: Backend, tmp_path: Path
) -> None:
    folder = tmp_path / "profiles"
    folder.mkdir()
    profiles = FeatureView(
        "profiles",
        CARD,
        FileSource(str(folder / "*.parquet"), "ts", "written"),
        features=(Feature("limit", "float64"), Feature("country", "string")),
        aggregations=(Aggregation("max", "1h", "limit"),),
        ttl="2h",
    )
    store, clock = feature_store(real_backend, tmp_path, (profiles,))
    rng = np.random.default_rng(5)
    keys = [f"c{i}" for i in range(8)]
    for part in range(3):
        clock.now = NOW + part * 1800.0
        times = clock.now - rng.uniform(0, 3600, 200)
        pq.write_table(
            pa.table(
                {
                    "card_id": [str(k) for k in rng.choice(keys, 200)],
                    "ts": times,
                    "written": np.full(200, clock.now),
                    "limit": rng.integers(100, 5000, 200).astype(float),
                    "country": [str(c) for c in rng.choice(["DE", "FR", "PT"], 200)],
                }
            ),
            folder / f"part-{part}.parquet",
        )
        store.materialize_incremental()

    refs = ["profiles:limit", "profiles:country", "profiles:limit_max_1h"]
    for after in (0.0, 600.0, 3000.0):
        online, offline = both_ways(store, [*keys, "unknown"], refs, clock.now + after)
        assert online == offline, after
        assert online["limit"][0] is not None
