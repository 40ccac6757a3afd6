"""The retraining loop over in-memory stores, on simulated time: trigger -> pipeline ->
gate -> register -> canary, every step an event; failures leave the champion alone."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelyard.errors import ConflictError, NotFoundError, ValidationError
from modelyard.monitoring import InMemoryInferenceLogRepository, InMemoryMonitoringRepository
from modelyard.monitoring.rules import Alert
from modelyard.pipelines import (
    Candidate,
    GatePolicy,
    InMemoryPipelineRepository,
    PipelineContext,
    RetrainingLoop,
    RetrainPlan,
    StepCache,
    step,
)
from modelyard.pipelines.ab import AbLook
from modelyard.pipelines.history import episodes
from modelyard.pipelines.loop import RETRAIN_TAG
from modelyard.pipelines.plan import AbPolicy
from modelyard.registry import InMemoryRegistryRepository
from modelyard.registry.registry import Registry
from modelyard.routing import DeploymentStore, InMemoryDeploymentRepository, Sequential
from modelyard.routing.abtest import ExperimentReport, ExperimentVerdict
from modelyard.routing.experiments import Experiment
from modelyard.store.artifacts import LocalArtifactStore
from modelyard.tracking import Tracker
from modelyard.tracking.memory import InMemoryRunRepository

WEIGHTS = {"A": np.array([2.0, -1.5, 0.0, 0.0]), "B": np.array([0.0, 0.0, 2.0, -1.5])}
NAMES = ["x0", "x1", "x2", "x3"]


def concept(name: str, rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4)).astype(np.float32)
    return x, (x @ WEIGHTS[name] + rng.normal(scale=0.3, size=rows) > 0).astype(np.int64)


@step
def fit(x: np.ndarray, y: np.ndarray, seed: int) -> LogisticRegression:
    return LogisticRegression(random_state=seed).fit(x, y)


def trained_on(name: str, *, shuffle: bool = False) -> Callable[[PipelineContext], Candidate]:
    def pipeline(ctx: PipelineContext) -> Candidate:
        x, y = concept(name, 2_000, seed=ctx.seed + 1)
        labels = np.random.default_rng(0).permutation(y[:1500]) if shuffle else y[:1500]
        model = ctx.run(fit, x[:1500], labels, seed=ctx.seed)
        return Candidate(model, x[:1500], x[1500:], y[1500:], feature_names=NAMES)

    return pipeline


@step
def explode(seed: int) -> None:
    raise RuntimeError("no positive class in the window")


def failing(ctx: PipelineContext) -> Candidate:
    ctx.run(explode, ctx.seed)
    raise AssertionError("not reached")


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class World:
    """One home in memory: model ``churn`` v1 (concept A) serving deployment ``scoring``."""

    def __init__(self, tmp_path: Path, pipelines: dict[str, Callable[..., Any]]) -> None:
        artifacts = LocalArtifactStore(tmp_path / "artifacts")
        self.clock = Clock()
        self.tracker = Tracker(InMemoryRunRepository(), artifacts)
        self.registry = Registry(InMemoryRegistryRepository(), artifacts, runs=self.tracker)
        self.routing = InMemoryDeploymentRepository()
        self.store = DeploymentStore(self.routing, self.registry, clock=self.clock)
        self.plans = InMemoryPipelineRepository()
        self.monitoring = InMemoryMonitoringRepository()
        x, y = concept("A", 2_000, seed=0)
        self.registry.register("churn", LogisticRegression().fit(x, y), x, feature_names=NAMES)
        self.store.create("scoring", "churn", 1)
        self.loop = RetrainingLoop(
            plans=self.plans, deployments=self.store, events=self.routing,
            registry=self.registry, tracker=self.tracker,
            cache=StepCache(self.plans, artifacts, self.clock), monitoring=self.monitoring,
            inference_log=InMemoryInferenceLogRepository(), clock=self.clock,
            load=lambda reference: pipelines[reference], judges={"scripted": self.judge},
        )  # fmt: skip
        self.looks: list[tuple[str, str | None]] = []  # the scripted judge's next verdicts

    def judge(
        self, deployment: str, experiment: Experiment, now: float,
        previous: ExperimentReport | None,
    ) -> AbLook:  # fmt: skip
        verdict, winner = self.looks.pop(0)
        report = ExperimentReport(ExperimentVerdict(verdict), winner, f"{verdict} {winner}", (),
                                  "sequential")  # fmt: skip
        return AbLook(report, verdict != "continue", report.reason, {"srm": {"p_value": 0.5}})

    def configure(self, pipeline: str, **settings: Any) -> RetrainPlan:
        settings.setdefault("gate", GatePolicy(min_absolute_change=0.02))
        return self.loop.configure(RetrainPlan("scoring", pipeline, **settings))

    def alert(self, version: int = 1) -> None:
        fired = Alert("scoring", "accuracy-low", version, "accuracy", 0.52, "<", 0.8, 2,
                      self.clock.now, {})  # fmt: skip
        self.monitoring.record_alerts([fired], {}, "monitor")

    def kinds(self) -> list[str]:
        return [e.kind for e in reversed(self.store.events("scoring", "", limit=100))]


PIPELINES = {
    "project:concept_b": trained_on("B"),
    "project:shuffled": trained_on("A", shuffle=True),
    "project:failing": failing,
}


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path, PIPELINES)


def test_an_alert_retrains_gates_registers_and_starts_the_canary(world: World) -> None:
    world.configure("project:concept_b", on_alert=True)
    world.clock.now += 60
    assert [r.decision.start for r in world.loop.check()] == [False]
    world.alert()
    world.clock.now += 60
    (result,) = world.loop.check()
    record = result.retrain
    assert result.decision.trigger == "alert"
    assert record is not None
    assert record.status == "rolled_out"
    assert record.version == 2
    version = world.registry.get_version("churn", 2)
    assert version.tags[RETRAIN_TAG] == str(record.id)
    assert version.parent_version == 1
    assert version.run_id == record.run_id
    assert version.metrics["roc_auc"] > 0.95
    deployment = world.store.get("scoring")
    assert (deployment.config.champion, deployment.config.canary) == (1, 2)
    assert deployment.rollout is not None
    assert deployment.rollout.policy.max_decision_change == 1.0
    assert world.kinds()[-5:] == [
        "retrain.started",
        "retrain.trained",
        "retrain.registered",
        "rollout.start",
        "retrain.rolled_out",
    ]
    (story,) = episodes(reversed(world.store.events("scoring", "", limit=100)))
    assert story.trigger == "alert"
    assert story.outcome == "canary out"
    assert "accuracy-low: accuracy = 0.52 < 0.8 for 2 windows (v1)" in story.story()
    assert "v2 beat v1 on roc_auc" in story.story()


def test_a_worse_candidate_is_stopped_at_the_gate_with_its_figures(world: World) -> None:
    world.configure("project:shuffled")
    record = world.loop.retrain("scoring")
    assert record.status == "gate_failed"
    assert record.version is None
    assert record.gate is not None
    assert not record.gate["passed"]
    assert [v.version for v in world.registry.list_versions("churn")] == [1]
    assert world.store.get("scoring").config.champion == 1
    (event,) = world.store.events("scoring", "retrain.gate_failed")
    assert "does not beat the champion by 0.02" in event.reason
    assert set(event.payload["candidate"]) >= {"roc_auc", "accuracy"}
    assert event.payload["champion"]["roc_auc"] > 0.95


def test_a_step_that_raises_marks_the_attempt_failed_and_leaves_the_champion(world: World) -> None:
    world.configure("project:failing")
    record = world.loop.retrain("scoring")
    assert record.status == "failed"
    assert record.error == "step 'explode' failed: RuntimeError: no positive class in the window"
    (event,) = world.store.events("scoring", "retrain.failed")
    assert event.payload["step"] == "explode"
    assert [v.version for v in world.registry.list_versions("churn")] == [1]
    assert world.store.get("scoring").rollout is None
    assert world.plans.lease("scoring") is None


def test_two_triggers_at_once_start_one_run(tmp_path: Path) -> None:
    inside, release = threading.Event(), threading.Event()

    def blocking(ctx: PipelineContext) -> Candidate:
        inside.set()
        release.wait(30)
        return trained_on("B")(ctx)

    world = World(tmp_path, {"project:blocking": blocking})
    world.configure("project:blocking", on_alert=True)
    results: list[object] = []
    first = threading.Thread(target=lambda: results.append(world.loop.retrain("scoring")))
    first.start()
    assert inside.wait(30)
    with pytest.raises(ConflictError, match="a retrain of this deployment is running"):
        world.loop.retrain("scoring")
    world.alert()
    (held,) = world.loop.check()
    assert held.retrain is None
    assert held.decision.held == "a retrain of this deployment is running"
    release.set()
    first.join(30)
    assert [getattr(r, "status", None) for r in results] == ["rolled_out"]
    assert len(world.loop.attempts("scoring")) == 1


def test_an_attempt_whose_process_died_is_resumed_not_registered_twice(world: World) -> None:
    plan = world.configure("project:concept_b")
    dead = "some-host-that-is-gone:1:dead"
    # The dead attempt had registered its version, then died before the rollout.
    orphan = world.plans.start_retrain("scoring", "drift", "drift in x2", dead, world.clock.now, 1)
    x, y = concept("B", 500, seed=3)
    world.registry.register("churn", LogisticRegression().fit(x, y), x, feature_names=NAMES,
                            tags={RETRAIN_TAG: str(orphan.id)})  # fmt: skip
    world.plans.take_lease("scoring", dead, world.clock.now, 300.0, lambda lease: False)
    world.clock.now += 301  # its lease ran out
    record = world.loop.retrain("scoring")
    assert record.status == "rolled_out"
    assert record.version == 2
    assert [v.version for v in world.registry.list_versions("churn")] == [1, 2]
    assert world.plans.retrains("scoring")[1].status == "abandoned"
    assert "retrain.resumed" in world.kinds()
    assert plan.deployment == "scoring"


def test_a_retrain_waits_for_the_running_rollout(world: World) -> None:
    world.configure("project:concept_b")
    world.loop.retrain("scoring")
    with pytest.raises(ConflictError, match="cannot retrain 'scoring' now: a rollout is in"):
        world.loop.retrain("scoring")


def test_a_schedule_retrains_once_then_the_cool_down_holds(world: World) -> None:
    world.configure("project:shuffled", schedule="*/10 * * * *", cooldown_s=3600.0)
    world.clock.now += 600
    (first,) = world.loop.check()
    assert first.decision.trigger == "schedule"
    assert first.retrain is not None
    assert first.retrain.status == "gate_failed"
    world.clock.now += 600
    (second,) = world.loop.check()
    assert second.retrain is None
    assert second.decision.held is not None
    assert second.decision.held.startswith("cool-down")


def test_unknown_deployments_and_plans_are_clear_errors_writing_nothing(world: World) -> None:
    with pytest.raises(NotFoundError, match="nope"):
        world.loop.configure(RetrainPlan("nope", "project:concept_b"))
    assert world.plans.plans() == []
    with pytest.raises(NotFoundError, match="deployment 'scoring' has no retraining plan"):
        world.loop.retrain("scoring")
    with pytest.raises(NotFoundError, match="nope"):
        world.loop.retrain("nope")


def test_a_pipeline_reference_that_does_not_import_fails_the_attempt(tmp_path: Path) -> None:
    world = World(tmp_path, {})
    world.loop = RetrainingLoop(
        plans=world.plans, deployments=world.store, events=world.routing,
        registry=world.registry, tracker=world.tracker,
        cache=StepCache(world.plans, LocalArtifactStore(tmp_path / "a2"), world.clock),
        monitoring=world.monitoring, inference_log=InMemoryInferenceLogRepository(),
        clock=world.clock,
    )  # fmt: skip
    world.configure("no_such_module_here:pipeline")
    record = world.loop.retrain("scoring")
    assert record.status == "failed"
    assert record.error is not None
    assert "cannot import 'no_such_module_here'" in record.error
    with pytest.raises(ValidationError):
        RetrainPlan("scoring", "not a reference")


def test_an_ab_plan_promotes_its_candidate_only_when_the_test_says_it_won(world: World) -> None:
    ab = AbPolicy(metric="scripted", weight=30.0, max_days=2.0)
    world.configure("project:concept_b", rollout_kind="ab", ab=ab)
    record = world.loop.retrain("scoring")
    assert record.status == "rolled_out"
    deployment = world.store.get("scoring")
    assert deployment.rollout is None  # no canary
    experiment = deployment.config.experiment
    assert experiment is not None
    assert [(a.name, a.version, a.weight) for a in experiment.arms] == [
        ("champion", 1, 70.0), ("candidate", 2, 30.0),
    ]  # fmt: skip
    assert world.kinds()[-2:] == ["experiment.start", "retrain.ab_started"]

    world.looks = [("continue", None), ("winner", "candidate")]
    world.clock.now += 3600
    world.loop.check()
    assert world.store.get("scoring").config.experiment is not None
    with pytest.raises(ConflictError, match="an experiment is in progress"):
        world.loop.retrain("scoring")
    world.clock.now += 3600
    world.loop.check()
    deployment = world.store.get("scoring")
    assert deployment.config.experiment is None
    assert deployment.config.champion == 2
    assert world.kinds()[-3:] == ["experiment.report", "experiment.stop", "retrain.ab_promoted"]
    (story,) = episodes(reversed(world.store.events("scoring", "", limit=100)))
    assert story.outcome == "promoted"
    assert "the candidate won" in story.story()


@pytest.mark.parametrize(
    ("looks", "why"),
    [
        ([("winner", "champion")], "the candidate did not win"),
        ([("continue", None), ("continue", None)], "no decision after"),
    ],
)
def test_an_ab_candidate_that_does_not_win_is_not_promoted(
    world: World, looks: list[tuple[str, str | None]], why: str
) -> None:
    world.configure("project:concept_b", rollout_kind="ab", ab=AbPolicy("scripted", max_days=1))
    world.loop.retrain("scoring")
    world.looks = list(looks)
    for _ in looks:
        world.clock.now += 20 * 3600
        world.loop.check()
    deployment = world.store.get("scoring")
    assert deployment.config.experiment is None
    assert deployment.config.champion == 1
    (stopped,) = world.store.events("scoring", "retrain.ab_stopped", limit=5)
    assert why in stopped.reason
    assert stopped.payload["version"] == 2
    assert episodes(reversed(world.store.events("scoring", "", limit=100)))[0].outcome == (
        "kept out"
    )


def test_a_persons_experiment_is_not_ended_by_the_loop(world: World) -> None:
    world.configure("project:concept_b", rollout_kind="ab", ab=AbPolicy("scripted"))
    x, y = concept("B", 500, seed=3)
    world.registry.register("churn", LogisticRegression().fit(x, y), x, feature_names=NAMES)
    world.store.start_experiment(
        "scoring", [("champion", 1, 50.0), ("candidate", 2, 50.0)], Sequential(0.05)
    )
    assert world.loop.judge_experiment(world.loop.plan("scoring")) is None
    assert world.store.get("scoring").config.experiment is not None


def test_an_ab_plan_round_trips_and_names_bad_settings() -> None:
    plan = RetrainPlan("d", "m:f", rollout_kind="ab", ab=AbPolicy(weight=20.0, max_days=3))
    assert RetrainPlan.from_dict(plan.to_dict()) == plan
    with pytest.raises(ValidationError, match="rollout_kind"):
        RetrainPlan("d", "m:f", rollout_kind="shadow")
    with pytest.raises(ValidationError, match="ab.weight"):
        AbPolicy(weight=100.0)
