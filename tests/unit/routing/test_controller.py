"""The rollout controller on simulated time, with traffic from the in-memory metrics source."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from modelyard.errors import ConflictError, ValidationError, VersionNotFoundError
from modelyard.routing import (
    DeploymentStore,
    InMemoryCatalog,
    InMemoryMetrics,
    Phase,
    RolloutController,
    RolloutPolicy,
    Verdict,
)

POLICY = RolloutPolicy(step_weights=(5, 25, 50, 100), interval_s=60, min_requests=100)


class Traffic:
    """Simulated requests, split between champion and canary by the deployment's weight."""

    def __init__(self, store: DeploymentStore, metrics: InMemoryMetrics, seed: int = 0) -> None:
        self.store, self.metrics = store, metrics
        self.rng = np.random.default_rng(seed)

    def serve(
        self,
        start: float,
        end: float,
        requests: int,
        canary_errors: float = 0.001,
        canary_ms: float = 40.0,
    ) -> None:
        found = self.store.get("api")
        config = found.config
        on_canary = self.rng.random(requests) < config.canary_weight / 100
        arms = [(config.champion, ~on_canary, 0.001, 40.0)]
        if config.canary is not None:
            arms.append((config.canary, on_canary, canary_errors, canary_ms))
        for version, mask, error_rate, median in arms:
            n = int(mask.sum())
            self.metrics.record(
                "api",
                version,
                at=self.rng.uniform(start, end, n),
                errors=self.rng.random(n) < error_rate,
                latency_ms=self.rng.lognormal(np.log(median), 0.3, n),
                predictions=self.rng.beta(2, 5, n),
            )


@pytest.fixture
def setup(store: DeploymentStore, clock: Any) -> tuple[RolloutController, Traffic]:
    store.create("api", "m", 1, actor="ana")
    metrics = InMemoryMetrics()
    controller = RolloutController(store, metrics, clock)
    controller.start("api", 2, POLICY, actor="ana")
    return controller, Traffic(store, metrics)


def run(controller: RolloutController, traffic: Traffic, clock: Any, **serve: Any) -> list[Verdict]:
    start = clock.now
    end = clock.advance(POLICY.interval_s)
    traffic.serve(start, end, **serve)
    return [r.decision.verdict for r in controller.tick() if r.decision is not None]


def test_a_good_canary_is_promoted_through_every_step(
    setup: tuple[RolloutController, Traffic], store: DeploymentStore, clock: Any
) -> None:
    controller, traffic = setup
    assert store.get("api").config.canary_weight == 5
    weights, verdicts = [], []
    for _ in range(3):
        verdicts += run(controller, traffic, clock, requests=4_000)
        weights.append(store.get("api").config.canary_weight)
    assert verdicts == [Verdict.ADVANCE, Verdict.ADVANCE, Verdict.PROMOTE]
    assert weights == [25, 50, 0]
    done = store.get("api")
    assert (done.config.champion, done.config.canary) == (2, None)
    assert done.rollout is not None
    assert done.rollout.state.phase is Phase.PROMOTED
    kinds = [e.kind for e in reversed(store.events("api", "rollout."))]
    assert kinds == ["rollout.start", "rollout.advance", "rollout.advance", "rollout.promote"]
    assert [h.revision for h in store.history("api")] == [1, 2, 3, 4, 5]
    assert run(controller, traffic, clock, requests=100) == []  # nothing left to judge


def test_a_failing_canary_is_rolled_back_within_one_interval(
    setup: tuple[RolloutController, Traffic], store: DeploymentStore, clock: Any
) -> None:
    controller, traffic = setup
    assert run(controller, traffic, clock, requests=20_000, canary_errors=0.05) == [
        Verdict.ROLLBACK
    ]
    done = store.get("api")
    assert (done.config.champion, done.config.canary, done.config.canary_weight) == (1, None, 0)
    event = store.events("api", "rollout.rollback")[0]
    assert "error rate" in event.reason
    assert event.actor == "rollout-controller"
    assert event.payload["figures"]["error_rate_vs_champion.outcome"] == "breached"
    assert event.payload["canary"] == 2
    assert "rollout.rollback" in store.history("api")[-1].reason


def test_a_p99_breach_rolls_back(
    setup: tuple[RolloutController, Traffic], store: DeploymentStore, clock: Any
) -> None:
    controller, traffic = setup
    assert run(controller, traffic, clock, requests=20_000, canary_ms=900.0) == [Verdict.ROLLBACK]
    event = store.events("api", "rollout.rollback")[0]
    assert "p99" in event.reason
    assert event.payload["figures"]["p99.outcome"] == "breached"


def test_holds_while_the_sample_is_too_small(
    setup: tuple[RolloutController, Traffic], store: DeploymentStore, clock: Any
) -> None:
    controller, traffic = setup
    assert run(controller, traffic, clock, requests=600) == [Verdict.HOLD]
    hold = store.events("api", "rollout.hold")[0]
    assert "sample too small" in hold.reason
    assert store.get("api").config.canary_weight == 5
    # Not due again until another interval has passed, whatever arrives meanwhile.
    clock.advance(10)
    assert controller.tick() == []
    clock.advance(-10)
    # The window keeps growing until the canary has min_requests, then it advances.
    verdicts = []
    while Verdict.ADVANCE not in verdicts and len(verdicts) < 6:
        verdicts += run(controller, traffic, clock, requests=600)
    assert verdicts[-1] is Verdict.ADVANCE
    assert len(verdicts) >= 2
    assert set(verdicts[:-1]) == {Verdict.HOLD}
    assert store.get("api").config.canary_weight == 25
    figures = store.events("api", "rollout.advance")[0].payload["figures"]
    assert figures["canary.requests"] >= POLICY.min_requests


def test_manual_pause_resume_promote_and_abort(
    setup: tuple[RolloutController, Traffic], store: DeploymentStore, clock: Any
) -> None:
    controller, traffic = setup
    paused = controller.pause("api", actor="bo", note="checking dashboards")
    assert paused.rollout is not None
    assert paused.rollout.state.phase is Phase.PAUSED
    assert run(controller, traffic, clock, requests=4_000) == []  # paused: not judged
    controller.resume("api", actor="bo")
    promoted = controller.promote("api", actor="bo", note="looks fine")
    assert (promoted.config.champion, promoted.config.canary) == (2, None)
    kinds = [(e.kind, e.actor) for e in store.events("api", "rollout.")][:3]
    assert kinds == [("rollout.promote", "bo"), ("rollout.resume", "bo"), ("rollout.pause", "bo")]
    assert "looks fine" in store.events("api", "rollout.promote")[0].reason
    with pytest.raises(ConflictError, match="cannot abort a rollout that is promoted"):
        controller.abort("api")
    controller.start("api", 3, POLICY)
    aborted = controller.abort("api", note="wrong build")
    assert (aborted.config.champion, aborted.config.canary, aborted.config.canary_weight) == (
        2,
        None,
        0,
    )


def test_bad_rollouts_are_refused_with_reasons(
    setup: tuple[RolloutController, Traffic], store: DeploymentStore
) -> None:
    controller, _ = setup
    revision = store.revision("api")
    with pytest.raises(ConflictError, match="a rollout of version 2 is progressing at 5%"):
        controller.start("api", 3)
    controller.abort("api")
    with pytest.raises(
        ValidationError, match=r"m/4 \(canary\) does not accept the inputs .* f4, f5"
    ):
        controller.start("api", 4)
    with pytest.raises(VersionNotFoundError, match="model 'm' has no version 9"):
        controller.start("api", 9)
    with pytest.raises(ValidationError, match="canary must differ from the champion"):
        controller.start("api", 1)
    assert store.revision("api") == (revision or 0) + 1  # only the abort was written
    store.create("fresh", "m", 1)
    with pytest.raises(ConflictError, match="'fresh' has no rollout to pause"):
        controller.pause("fresh")


def test_tick_follows_the_alias_and_promotion_moves_it(
    catalog: InMemoryCatalog, store: DeploymentStore, clock: Any
) -> None:
    catalog.set_alias("m", "champion", 1)
    store.create("api", "m", "champion", follow_alias="champion")
    controller = RolloutController(store, InMemoryMetrics(), clock)
    assert controller.tick() == []
    catalog.set_alias("m", "champion", 3)
    [result] = controller.tick()
    assert result.synced_to == 3
    assert store.get("api").config.champion == 3
    assert "alias 'champion' moved" in store.events("api", "deployment.alias")[0].reason
    controller.start("api", 2)
    controller.promote("api")
    assert catalog.resolve("m@champion") == ("m", 2)
    assert controller.tick() == []  # the alias and the champion agree


def test_promoting_a_canary_that_is_also_a_shadow_drops_the_shadow(
    setup: tuple[RolloutController, Traffic], store: DeploymentStore
) -> None:
    controller, _ = setup
    store.set_shadow("api", 2, 0.5)
    store.set_shadow("api", 3, 0.1)
    done = controller.promote("api")
    assert done.config.champion == 2
    assert [s.version for s in done.config.shadows] == [3]


def test_each_tick_reads_the_clock_once(store: DeploymentStore) -> None:
    store.create("api", "m", 1)
    ticks = []

    def clock() -> float:
        ticks.append(1)
        return 1_700_000_000.0

    controller = RolloutController(store, InMemoryMetrics(), clock)
    for _ in range(2):
        assert controller.tick() == []  # no rollout and no alias: nothing to do
    assert len(ticks) == 2
