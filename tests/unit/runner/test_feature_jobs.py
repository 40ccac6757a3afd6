"""The runner's trimming of the online store's events: what no read needs any more goes."""

from __future__ import annotations

from typing import Any

from modelyard.features import Aggregation, Entity, Feature, FeatureView, StreamSource
from modelyard.features.definition_set import Definitions
from modelyard.features.memory import InMemoryDefinitionRepository
from modelyard.features.online import Event, InMemoryOnlineStore
from modelyard.features.registry import FeatureRegistry
from modelyard.runner.features import TrimEventsJob

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
