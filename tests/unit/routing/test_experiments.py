"""A/B experiments: start and stop through the store, reports from outcome sources."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np
import pytest

from modelyard.errors import ConflictError, ValidationError
from modelyard.monitoring import MemoryInferenceLogRepository, request_outcomes, write_records
from modelyard.monitoring.inference_log.repository import StoredLabel
from modelyard.routing import (
    DeploymentStore,
    ExperimentReporter,
    ExperimentVerdict,
    FixedHorizon,
    InMemoryOutcomes,
    LoggedOutcomes,
    RolloutController,
    Sequential,
)
from modelyard.yard import Yard

ARMS = [("a", 1, 50.0), ("b", "3", 50.0)]


@pytest.fixture
def running(store: DeploymentStore) -> DeploymentStore:
    store.create("api", "m", 1, routing_key="header:x-user")
    store.start_experiment("api", ARMS, Sequential(tau=0.05, min_samples_per_arm=200), actor="ana")
    return store


def test_start_puts_the_arms_in_the_config_and_an_event(running: DeploymentStore) -> None:
    found = running.get("api")
    assert found.arms == {"a": 1, "b": 3}
    assert found.revision == 2
    users = {found.route(f"user-{i}", 0.0).arm for i in range(100)}
    assert users == {"a", "b"}
    [event] = running.events("api", "experiment.start")
    assert event.reason == "experiment started: a=v1:50%, b=v3:50%"
    assert event.actor == "ana"


def test_experiments_and_rollouts_exclude_each_other(running: DeploymentStore, clock: Any) -> None:
    with pytest.raises(ConflictError, match="an experiment is running; stop it first"):
        RolloutController(running, clock=clock).start("api", 2)
    with pytest.raises(ConflictError, match="an experiment is running"):
        running.start_experiment("api", ARMS, FixedHorizon(100))
    running.stop_experiment("api")
    RolloutController(running, clock=clock).start("api", 2)
    with pytest.raises(ConflictError, match="a rollout of version 2 is progressing"):
        running.start_experiment("api", ARMS, FixedHorizon(100))


def test_bad_arms_are_refused(store: DeploymentStore) -> None:
    store.create("api", "m", 1)
    with pytest.raises(ValidationError, match=r"weights must sum to 100, got 90"):
        store.start_experiment("api", [("a", 1, 50), ("b", 2, 40)], FixedHorizon(100))
    with pytest.raises(ValidationError, match=r"m/4 \(experiment arm b\) does not accept"):
        store.start_experiment("api", [("a", 1, 50), ("b", 4, 50)], FixedHorizon(100))
    with pytest.raises(ConflictError, match="runs no experiment to stop"):
        store.stop_experiment("api")


def test_report_declares_a_winner_and_stop_promotes_it(
    running: DeploymentStore, routing_yard: Yard, clock: Any
) -> None:
    outcomes = InMemoryOutcomes()
    started = clock.now
    rng = np.random.default_rng(1)
    for arm, rate in (("a", 0.10), ("b", 0.16)):
        for at, converted in zip(
            rng.uniform(started, started + 600, 4000), rng.random(4000) < rate, strict=True
        ):
            outcomes.add("api", arm, float(at), float(converted))
    reporter = ExperimentReporter(routing_yard.db, outcomes, clock=clock)
    experiment = running.get("api").config.experiment
    assert experiment is not None
    early = reporter.report("api", experiment, now=started + 10)
    assert early.verdict is ExperimentVerdict.CONTINUE
    final = reporter.report("api", experiment, now=started + 600)
    assert final.verdict is ExperimentVerdict.WINNER
    assert final.winner == "b"
    assert reporter.last_report("api", experiment) == final
    assert len(running.events("api", "experiment.report")) == 2
    stopped = running.stop_experiment("api", promote="b", reason="b wins")
    assert (stopped.config.champion, stopped.config.experiment) == (3, None)
    [event] = running.events("api", "experiment.stop")
    assert event.reason == "b wins; arm b (version 3) promoted to champion"
    with pytest.raises(ConflictError, match="runs no experiment"):
        running.stop_experiment("api")


def test_logged_outcomes_join_feedback_by_request_id(
    running: DeploymentStore, routing_yard: Yard
) -> None:
    experiment = running.get("api").config.experiment
    assert experiment is not None
    at = experiment.started_at + 1
    records = [
        {"request_id": f"q{i}", "ts": at, "deployment": "api", "model": "m",
         "version": 1 if i < 4 else 3, "arm": "a" if i < 4 else "b", "status": 200,
         "latency_ms": 3.0, "rows": 1}
        for i in range(6)
    ]  # fmt: skip
    labels = {"q0": 1, "q1": 0, "q4": {"revenue": 12.5}, "q5": True}
    log = MemoryInferenceLogRepository()
    write_records(log, records)
    log.put_labels(
        [
            StoredLabel(request_id=q, label=json.dumps(v), received_at=at, dedupe_key=q)
            for q, v in labels.items()
        ]
    )
    source = LoggedOutcomes(partial(request_outcomes, log))
    a = source("api", "a", 1, experiment, experiment.started_at, at + 1)
    assert (a.n, a.estimate) == (4, 0.25)  # q0 converted; q1 did not; q2, q3 have no feedback
    b = source("api", "b", 3, experiment, experiment.started_at, at + 1)
    assert b.n == 2  # q4's label is an object without a "label" field: not a conversion
    assert b.estimate == 0.5
    revenue = source(
        "api",
        "b",
        3,
        replace(experiment, metric="revenue", kind="mean"),
        experiment.started_at,
        at + 1,
    )
    assert (revenue.n, revenue.estimate) == (1, 12.5)
