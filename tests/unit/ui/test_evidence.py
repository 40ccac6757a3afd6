"""Each decision on the monitoring page linked to its evidence (``ui.data.evidence``):
pure functions of events, alerts and drift checks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from modelyard.monitoring.drift import DriftReport, detect_drift
from modelyard.monitoring.repository import DriftResult, StoredEvent
from modelyard.routing.deployment import Event
from modelyard.ui.data.evidence import alert_rows, decision_rows

T0 = 1_790_000_000.0


@pytest.fixture(scope="module")
def report() -> DriftReport:
    rng = np.random.default_rng(0)
    return detect_drift({"a": rng.normal(size=300)}, {"a": rng.normal(size=200) + 1.0})


def check(report: DriftReport, number: int, version: int, at: float) -> DriftResult:
    return DriftResult(number, "fraud", "fraud", version, at - 3600, at, 200, report, at)


def alert(number: int, at: float, metric: str, version: int = 1) -> StoredEvent:
    payload: dict[str, Any] = {"rule": metric, "version": version, "metric": metric}
    return StoredEvent(number, at, "alert", "fraud", f"{metric} high", payload, "monitor")


def test_a_drift_alert_links_to_the_check_its_pass_stored(report: DriftReport) -> None:
    checks = [
        check(report, 1, 1, T0),
        check(report, 2, 2, T0 + 60),  # the other version, at the alert's time
        check(report, 3, 1, T0 + 60),
        check(report, 4, 1, T0 + 120),  # a later pass
    ]
    alerts = [alert(10, T0 + 60, "drift_share"), alert(11, T0 + 90, "p99_ms")]
    acks = [
        Event(T0 + 200, "alert.ack", "fraud", "on it", {"alert": 10}, "ada"),
        Event(T0 + 300, "alert.ack", "fraud", "again", {"alert": 10}, "bob"),
    ]
    rows = alert_rows(alerts, acks, checks)
    assert [r["id"] for r in rows] == [11, 10]  # newest first
    slow, drift = rows
    assert slow["evidence"] is None
    assert slow["acknowledged"] is None
    assert drift["evidence"]["id"] == 3
    assert drift["evidence"]["exact"] is True
    assert drift["acknowledged"] == {"actor": "ada", "at": T0 + 200, "reason": "on it"}
    older = alert_rows([alert(12, T0 + 100, "dataset_drift")], [], checks)[0]["evidence"]
    assert (older["id"], older["exact"]) == (3, False)  # its own check is not known


def test_decisions_link_to_their_gate_their_drift_check_and_their_analysis(
    report: DriftReport,
) -> None:
    checks = [check(report, 5, 1, T0), check(report, 6, 2, T0 + 5)]
    gate = {"gate": {"passed": True}, "candidate": {"auc": 0.9}, "champion": {"auc": 0.8}}
    analysis = {"verdict": "advance", "figures": {"p99_ms": 4.0}, "checks": [{"ok": True}]}
    started = {"trigger": "drift", "champion": 1, "retrain": 7}
    events = [
        Event(T0 + 400, "rollout.advance", "fraud", "fine", analysis, "controller"),
        Event(T0 + 300, "alert.ack", "fraud", "seen", {"alert": 1}, "ada"),
        Event(T0 + 200, "retrain.registered", "fraud", "v3", {**gate, "retrain": 7}, "bot"),
        Event(T0 + 150, "alert", "fraud", "drift", {"metric": "drift_share"}, "monitor"),
        Event(T0 + 100, "retrain.trained", "fraud", "run", {"retrain": 7}, "bot"),
        Event(T0 + 50, "retrain.started", "fraud", "drift", started, "bot"),
        Event(T0 - 10, "deployment.create", "fraud", "created", {"champion": 1}, "ada"),
    ]
    rows = decision_rows(events, checks, [])
    kinds = [r["kind"] for r in rows]
    assert kinds == [
        "rollout.advance",
        "retrain.registered",
        "retrain.trained",
        "retrain.started",
        "deployment.create",
    ]
    evidence = {r["kind"]: r["evidence"] for r in rows}
    assert evidence["rollout.advance"]["figures"] == {"p99_ms": 4.0}
    assert evidence["retrain.registered"]["candidate"] == {"auc": 0.9}
    assert evidence["retrain.trained"]["outcome"] == "retrain.registered"
    assert evidence["retrain.started"]["id"] == 5  # the champion's check, not v2's
    assert evidence["deployment.create"] is None


def test_a_retrain_started_by_an_alert_links_to_that_alert() -> None:
    started = Event(T0 + 10, "retrain.started", "fraud", "alert", {"trigger": "alert"}, "bot")
    alerts = [alert(1, T0 - 100, "auc_drop"), alert(2, T0, "auc_drop"), alert(3, T0 + 50, "x")]
    [row] = decision_rows([started], [], alerts)
    assert row["evidence"]["type"] == "alert"
    assert row["evidence"]["id"] == 2
