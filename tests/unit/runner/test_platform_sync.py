"""The push of a kserve deployment's manifests after each decision, on simulated time: the
controller decides as it always does, the job follows with the canary at its step, a
failed push is an event and is tried again later, and never holds a decision back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from modelyard.errors import PlatformError
from modelyard.platforms import render_target
from modelyard.registry.signature import FieldSpec, Signature
from modelyard.routing import (
    DeploymentStore,
    Event,
    InMemoryCatalog,
    InMemoryDeploymentRepository,
    InMemoryMetrics,
    RolloutController,
    RolloutPolicy,
    Target,
)
from modelyard.runner.platform_sync import PlatformSyncJob

POLICY = RolloutPolicy(step_weights=(5, 50, 100), interval_s=60, min_requests=100)
TARGET = Target("kserve", 2, 6, {"image": "registry.example.com/modelyard:1", "namespace": "ml"})


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def emit(self, level: str, event: str, fields: dict[str, Any], ts: float | None = None) -> None:
        self.lines.append((level, event, fields))

    def flush(self) -> None: ...

    def close(self) -> None: ...


class RecordingSink:
    """Keeps what it was pushed; ``down`` makes it refuse."""

    where = "recorded"

    def __init__(self) -> None:
        self.pushed: list[tuple[str, list[dict[str, Any]]]] = []
        self.down = False

    def push(self, deployment: str, documents: Sequence[dict[str, Any]]) -> None:
        if self.down:
            raise PlatformError("the API server answered 503")
        self.pushed.append((deployment, list(documents)))

    def canary_percent(self) -> int | None:
        service = self.pushed[-1][1][-1]
        canary = service["spec"].get("canary")
        return None if not canary else int(canary[0]["trafficPercent"])


class World:
    def __init__(self) -> None:
        self.clock = Clock()
        catalog = InMemoryCatalog()
        signature = Signature((FieldSpec("f0", "float32"),), (FieldSpec("y", "int64"),), "matrix")
        for _ in range(2):
            catalog.add("m", signature)
        self.repository = InMemoryDeploymentRepository()
        self.store = DeploymentStore(self.repository, catalog, clock=self.clock)
        self.store.create("api", "m", 1, target=TARGET)
        self.store.create("local", "m", 1)  # builtin: never pushed
        self.metrics = InMemoryMetrics()
        self.controller = RolloutController(self.store, self.metrics, self.clock)
        self.sink = RecordingSink()
        self.log = Log()
        self.rng = np.random.default_rng(0)

    def job(self) -> PlatformSyncJob:
        return PlatformSyncJob(
            self.store, self.repository, render_target, self.sink, clock=self.clock
        )

    def good_traffic_and_tick(self) -> None:
        """One analysis interval of healthy traffic on both arms, then a controller tick."""
        start = self.clock.now
        self.clock.now += POLICY.interval_s
        for version in (1, 2):
            self.metrics.record(
                "api",
                version,
                at=self.rng.uniform(start, self.clock.now, 2_000),
                errors=np.zeros(2_000),
                latency_ms=self.rng.lognormal(np.log(30), 0.2, 2_000),
            )
        self.controller.tick()

    def events(self, kind: str) -> list[Event]:
        return self.repository.events("api", kind)


@pytest.fixture
def world() -> World:
    return World()


def test_each_step_and_the_promotion_are_pushed_once_with_the_canary_at_its_step(
    world: World,
) -> None:
    job = world.job()
    job.tick(world.log)
    assert [name for name, _ in world.sink.pushed] == ["api"]  # "local" is builtin
    assert world.sink.canary_percent() is None
    job.tick(world.log)
    assert len(world.sink.pushed) == 1  # nothing changed: nothing pushed

    world.controller.start("api", 2, POLICY)
    job.tick(world.log)
    assert world.sink.canary_percent() == 5
    world.good_traffic_and_tick()
    job.tick(world.log)
    assert world.sink.canary_percent() == 50
    world.good_traffic_and_tick()
    world.good_traffic_and_tick()
    job.tick(world.log)
    service = world.sink.pushed[-1][1][-1]
    assert world.store.get("api").config.champion == 2
    assert service["spec"]["predictor"]["name"] == "v2"
    assert "canary" not in service["spec"]
    assert service["spec"]["predictor"]["minReplicas"] == 2
    assert service["spec"]["predictor"]["maxReplicas"] == 6
    pushed = world.events("platform.pushed")
    revisions = [e.payload["revision"] for e in reversed(pushed)]  # events come newest first
    assert revisions == sorted(set(revisions))
    assert revisions[-1] == world.store.get("api").revision
    assert {e.actor for e in pushed} == {"platform-sync"}
    assert len(pushed) == len(world.sink.pushed) == 4  # start, 5%, 50%, promoted


def test_a_rollback_is_pushed_as_the_champion_alone(world: World) -> None:
    job = world.job()
    world.controller.start("api", 2, POLICY)
    job.tick(world.log)
    assert world.sink.canary_percent() == 5
    world.controller.abort("api", note="bad")
    job.tick(world.log)
    service = world.sink.pushed[-1][1][-1]
    assert service["spec"]["predictor"]["name"] == "v1"
    assert "canary" not in service["spec"]


def test_a_failed_push_is_an_event_retried_later_and_holds_no_decision_back(
    world: World,
) -> None:
    job = world.job()
    world.controller.start("api", 2, POLICY)
    world.sink.down = True
    job.tick(world.log)
    (failed,) = world.events("platform.push_failed")
    assert failed.payload["error"] == "the API server answered 503"
    assert failed.payload["attempt"] == 1
    assert failed.payload["retry_in_s"] == 1.0
    assert ("error", "platform_push_failed") in [(level, e) for level, e, _ in world.log.lines]
    job.tick(world.log)  # within the backoff: not tried again
    assert len(world.events("platform.push_failed")) == 1

    world.good_traffic_and_tick()  # the controller steps on while the platform is down
    assert world.store.get("api").config.canary_weight == 50
    job.tick(world.log)
    assert [e.payload["retry_in_s"] for e in world.events("platform.push_failed")] == [2.0, 1.0]

    world.sink.down = False
    world.clock.now += 2
    job.tick(world.log)
    assert world.sink.canary_percent() == 50  # the current step, not the missed one
    (pushed,) = world.events("platform.pushed")
    assert pushed.payload["attempts"] == 3


def test_a_new_leader_pushes_only_what_the_last_one_had_not(world: World) -> None:
    world.job().tick(world.log)
    assert len(world.sink.pushed) == 1
    world.job().tick(world.log)  # another node's job: the event says it was pushed
    assert len(world.sink.pushed) == 1
    world.controller.start("api", 2, POLICY)
    world.job().tick(world.log)
    assert len(world.sink.pushed) == 2
