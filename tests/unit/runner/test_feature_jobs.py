"""The runner's feature jobs: materialization brings the online store up to date with the
file sources, and trimming drops what no read needs any more."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from modelyard.config import Settings
from modelyard.features import (
    Aggregation,
    Entity,
    Feature,
    FeatureStore,
    FeatureView,
    FileSource,
    StreamSource,
)
from modelyard.features.definition_set import Definitions
from modelyard.features.memory import InMemoryDefinitionRepository
from modelyard.features.online import Event, InMemoryOnlineStore
from modelyard.features.registry import FeatureRegistry
from modelyard.runner.features import MaterializeJob, TrimEventsJob

NOW = 1_800_000_000.0
STATS = FeatureView(
    "card_stats",
    Entity("card", key="card_id"),
    StreamSource("transactions", fields=(Feature("amount", "float64"),)),
    aggregations=(Aggregation("count", "1h"),),
)


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def emit(self, level: str, event: str, fields: dict[str, Any], ts: float | None = None) -> None:
        self.lines.append((event, fields))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_events_past_the_window_and_the_lateness_are_trimmed() -> None:
    registry = FeatureRegistry(InMemoryDefinitionRepository(), clock=lambda: NOW)
    registry.apply(Definitions(views=(STATS,)))
    online = InMemoryOnlineStore()
    ages = {"fresh": 60.0, "in-lateness": 3600.0 + 200.0, "gone": 3600.0 + 700.0}
    online.add_events(
        "card_stats", [Event("c1", NOW - age, name, {"amount": 1.0}) for name, age in ages.items()]
    )
    job = TrimEventsJob(registry, online, allowed_lateness_s=300.0, clock=lambda: NOW)
    log = Log()
    job.tick(log)
    kept = [e.event_id for e in online.get_events("card_stats", ["c1"], 0.0)[0]]
    assert kept == ["in-lateness", "fresh"]
    assert log.lines == [("feature_events_trimmed", {"removed": {"transactions": 1}})]


def write_rows(folder: Path, part: int, rows: list[tuple[str, float, float]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.table(
            {
                "card_id": [r[0] for r in rows],
                "ts": pa.array([r[1] for r in rows], pa.float64()),
                "amount": pa.array([r[2] for r in rows], pa.float64()),
            }
        ),
        folder / f"part-{part}.parquet",
    )


def test_materialization_writes_what_arrived_since_the_last_tick(tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    profiles = FeatureView(
        "profiles",
        Entity("card", key="card_id"),
        FileSource(str(folder / "*.parquet"), "ts"),
        features=(Feature("amount", "float64"),),
    )
    registry = FeatureRegistry(InMemoryDefinitionRepository(), clock=lambda: NOW)
    registry.apply(Definitions(views=(profiles, STATS)))
    online = InMemoryOnlineStore()
    now = [NOW]
    store = FeatureStore(registry, online, Settings(home=tmp_path), clock=lambda: now[0])
    job = MaterializeJob(store, interval_s=60.0)
    log = Log()

    write_rows(folder, 1, [("c1", NOW - 10, 5.0), ("c2", NOW - 5, 7.0)])
    job.tick(log)
    assert [
        row and row.values["amount"] for row in online.get_latest("profiles", ["c1", "c2"])
    ] == [5.0, 7.0]
    assert [(event, fields["view"], fields["latest_written"]) for event, fields in log.lines] == [
        ("features_materialized", "profiles", 2)
    ]

    job.tick(log)  # nothing new: nothing written, nothing logged
    assert len(log.lines) == 1

    now[0] = NOW + 60
    write_rows(folder, 2, [("c1", NOW + 30, 9.0)])
    job.tick(log)
    assert [
        row and row.values["amount"] for row in online.get_latest("profiles", ["c1", "c2"])
    ] == [9.0, 7.0]
    assert log.lines[-1][1]["latest_written"] == 1
