"""The issue's test, on the real server: the concept of a labelled stream changes halfway;
the monitor's accuracy alert fires, the loop retrains on the labelled inference log, the
candidate passes the gate, goes out as a canary judged on live traffic and is promoted,
and the accuracy measured on labels after the promotion is back above the threshold."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from modelyard.monitoring.alerts import save_rule
from modelyard.monitoring.rules import AlertRule
from modelyard.pipelines import GatePolicy, RetrainPlan
from modelyard.routing import RolloutPolicy
from modelyard.runner.host import RunnerStores
from modelyard.runner.retraining import retraining_loop

from .conftest import Project
from .project.concept import FEATURES, generate

THRESHOLD = 0.8


class Traffic:
    """Sends rows of one concept in requests of 10 and labels every answered row."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=10)
        self.sent = 0

    def send(self, concept: str, requests: int, seed: int) -> float:
        """Send and label ``requests`` requests; returns the accuracy of the answers."""
        x, y = generate(concept, requests * 10, seed)
        right = 0
        for i in range(requests):
            rows, truth = x[i * 10 : (i + 1) * 10], y[i * 10 : (i + 1) * 10]
            instances = [dict(zip(FEATURES, map(float, row), strict=True)) for row in rows]
            answer = self.client.post("/v1/models/scoring:predict", json={"instances": instances})
            answer.raise_for_status()
            body = answer.json()
            right += sum(
                int(p["label"]) == int(t) for p, t in zip(body["predictions"], truth, strict=True)
            )
            labels = [
                {"request_id": body["id"], "row": r, "label": int(t)} for r, t in enumerate(truth)
            ]
            self.client.post("/v1/feedback", json={"labels": labels}).raise_for_status()
        self.sent += requests
        return right / (requests * 10)

    def answered_by(self) -> set[str]:
        """The versions that answer 20 requests now (a canary answers some of them)."""
        row = dict.fromkeys(FEATURES, 0.0)
        answers = [
            self.client.post("/v1/models/scoring:predict", json={"instances": [row]})
            for _ in range(20)
        ]
        return {str(answer.json()["model_version"]) for answer in answers}


def test_a_concept_change_is_detected_retrained_canaried_and_promoted(
    project: Project,
    launch_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    wait_until: Callable[..., Any],
) -> None:
    monkeypatch.chdir(project.root)  # where the loop finds the project's pipelines
    monkeypatch.syspath_prepend(str(project.root))
    with project.yard() as yard:
        from modelyard.monitoring.sql import SqlMonitoringRepository

        rule = AlertRule("scoring", "accuracy-low", "accuracy", THRESHOLD, "<", cooldown_s=0.0)
        save_rule(SqlMonitoringRepository(yard.db), rule, time.time())
    server = launch_server(
        project.settings.home, [], environ={
            "MODELYARD_MONITORING__CHECK_INTERVAL_S": "1",
            "MODELYARD_MONITORING__CHECK_WINDOW_S": "8",
        }, settings={"poll_interval_s": "0.25"},
    )  # fmt: skip
    traffic = Traffic(server.url)
    assert traffic.send("A", 10, seed=10) > 0.9  # the champion knows concept A

    stores = RunnerStores(project.settings)
    try:
        loop = retraining_loop(stores)
        loop.configure(
            RetrainPlan(
                "scoring", "concept:from_log", on_alert=True, window_days=1.0, cooldown_s=0.0,
                gate=GatePolicy(min_absolute_change=0.02),
                rollout=RolloutPolicy(step_weights=(50, 100), interval_s=2.0, min_requests=20,
                                      max_decision_change=1.0),
            )
        )  # fmt: skip
        before = traffic.send("B", 150, seed=11)
        assert before < THRESHOLD  # the concept changed: the champion is near chance

        def retrained() -> Any:
            started = [r for r in loop.check() if r.retrain is not None]
            return started[0].retrain if started else None

        record = wait_until(retrained, 90, lambda: traffic.send("B", 5, seed=12 + traffic.sent))
        assert record.trigger == "alert", record
        assert record.status == "rolled_out", record
        assert record.gate["passed"]

        def ended() -> Any:
            rollout = stores.deployments.get("scoring").rollout
            return rollout is not None and not rollout.state.active

        wait_until(ended, 120, lambda: traffic.send("B", 5, seed=1000 + traffic.sent))
        deployment = stores.deployments.get("scoring")
        assert deployment.rollout is not None
        assert deployment.rollout.state.phase.value == "promoted", stores.deployments.events(
            "scoring", "rollout."
        )
        assert deployment.config.champion == record.version
        # the workers pick the promotion up within their poll interval
        wait_until(lambda: traffic.answered_by() == {str(record.version)}, 30, lambda: None)
        after = traffic.send("B", 40, seed=5000)
        assert after > THRESHOLD + 0.05, (before, after)
    finally:
        stores.close()
    (story,) = project.json("history", "scoring")
    assert story["outcome"] == "promoted"
    assert story["trigger"] == "alert"
    assert "accuracy-low" in story["story"]
    assert "-> promoted" in story["story"]
