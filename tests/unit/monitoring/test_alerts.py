"""Alert rules on simulated time: streaks, cooldowns, versions, drops, the bus, and recording."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.errors import ValidationError
from modelyard.monitoring.alerts import (
    AlertBus,
    AlertEvent,
    recent_alerts,
    record_alerts,
    restore_state,
)
from modelyard.monitoring.drift import detect_drift
from modelyard.monitoring.drift_job import figures_for
from modelyard.monitoring.live_metrics import QualityMetrics, TrafficMetrics
from modelyard.monitoring.memory import InMemoryMonitoringRepository
from modelyard.monitoring.rules import Alert, AlertRule, AlertState, Figures, RuleState, evaluate

DEPLOYMENT = "fraud-api"


def figures(version: int = 1, **values: float) -> Figures:
    return Figures(DEPLOYMENT, version, values)


def window(values: dict[str, float]) -> Figures:
    return Figures(DEPLOYMENT, 1, values)


def run(
    rule: AlertRule, series: list[dict[str, float]], step_s: float = 300.0
) -> list[list[Alert]]:
    """Evaluate one window every ``step_s`` seconds; the alerts of each window."""
    state = AlertState()
    fired = []
    for number, values in enumerate(series):
        alerts, state = evaluate([rule], [window(values)], state, now=number * step_s)
        fired.append(alerts)
    return fired


def test_fires_only_after_for_windows_consecutive_breaches() -> None:
    rule = AlertRule(DEPLOYMENT, "slow", "p99_ms", 250.0, for_windows=3, cooldown_s=0)
    p99 = [300, 300, 100, 300, 300, 300, 300]
    fired = run(rule, [{"p99_ms": v} for v in p99])
    assert [len(a) for a in fired] == [0, 0, 0, 0, 0, 1, 1]
    alert = fired[5][0]
    assert alert.streak == 3
    assert alert.value == 300.0
    assert alert.reason == "slow: p99_ms = 300 > 250 for 3 windows (v1)"
    assert alert.figures == {"p99_ms": 300.0}


def test_cooldown_silences_a_lasting_breach_until_it_has_passed() -> None:
    rule = AlertRule(DEPLOYMENT, "errors", "error_rate", 0.05, cooldown_s=900.0)
    fired = run(rule, [{"error_rate": 0.2}] * 8, step_s=300.0)
    # fires at t=0, then the next window at or after t=900, then t=1800
    assert [len(a) for a in fired] == [1, 0, 0, 1, 0, 0, 1, 0]
    assert [a[0].at for a in fired if a] == [0.0, 900.0, 1800.0]


def test_a_window_without_the_metric_neither_extends_nor_breaks_a_streak() -> None:
    rule = AlertRule(DEPLOYMENT, "auc", "auc_drop", 0.05, for_windows=2)
    fired = run(
        rule, [{"auc_drop": 0.1}, {"requests": 10.0}, {"auc_drop": float("nan")}, {"auc_drop": 0.1}]
    )
    assert [len(a) for a in fired] == [0, 0, 0, 1]


def test_comparisons_and_thresholds() -> None:
    low = AlertRule(DEPLOYMENT, "low-acc", "accuracy", 0.8, comparison="<")
    assert [
        len(a) for a in run(low, [{"accuracy": 0.9}, {"accuracy": 0.8}, {"accuracy": 0.7}])
    ] == [0, 0, 1]
    at_least = AlertRule(DEPLOYMENT, "drift", "dataset_drift", 1.0, comparison=">=")
    assert [len(a) for a in run(at_least, [{"dataset_drift": 0.0}, {"dataset_drift": 1.0}])] == [
        0,
        1,
    ]


def test_versions_are_tracked_apart_and_a_rule_can_pin_one() -> None:
    any_version = AlertRule(DEPLOYMENT, "errors", "error_rate", 0.1, for_windows=2)
    pinned = AlertRule(DEPLOYMENT, "canary-errors", "error_rate", 0.1, version=2)
    other = AlertRule("search-api", "errors", "error_rate", 0.1)
    state = AlertState()
    windows = [figures(1, error_rate=0.5), figures(2, error_rate=0.5)]
    alerts, state = evaluate([any_version, pinned, other], windows, state, now=0.0)
    assert [(a.rule, a.version) for a in alerts] == [("canary-errors", 2)]
    windows = [figures(1, error_rate=0.0), figures(2, error_rate=0.5)]
    alerts, state = evaluate([any_version, pinned, other], windows, state, now=60.0)
    # v1 recovered and its streak reset; v2 breached twice in a row
    assert [(a.rule, a.version) for a in alerts] == [("errors", 2)]
    assert state.get((DEPLOYMENT, "errors", 1)).streak == 0
    assert state.get((DEPLOYMENT, "errors", 2)).streak == 2


def test_disabled_rules_never_fire() -> None:
    rule = AlertRule(DEPLOYMENT, "off", "error_rate", 0.0, enabled=False)
    assert run(rule, [{"error_rate": 1.0}]) == [[]]


def test_state_round_trips_and_evaluate_does_not_mutate_it() -> None:
    rule = AlertRule(DEPLOYMENT, "errors", "error_rate", 0.1, for_windows=3)
    before = AlertState()
    _, after = evaluate([rule], [figures(error_rate=0.5)], before, now=0.0)
    assert before.rules == {}
    assert AlertState.from_dict(after.to_dict()) == after


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "vibes"}, "unknown alert metric 'vibes'; choose one of requests"),
        ({"comparison": "=="}, "comparison must be one of >, >=, <, <=, got '=='"),
        ({"for_windows": 0}, "for_windows must be >= 1, got 0"),
        ({"cooldown_s": -1.0}, "cooldown_s must be >= 0"),
        ({"threshold": float("inf")}, "threshold must be a finite number"),
        ({"name": ""}, "needs a deployment and a name"),
    ],
)
def test_bad_rules_say_what_is_allowed(kwargs: dict[str, object], message: str) -> None:
    spec: dict[str, object] = {
        "deployment": DEPLOYMENT,
        "name": "r",
        "metric": "error_rate",
        "threshold": 0.1,
    }
    with pytest.raises(ValidationError, match=message):
        AlertRule(**{**spec, **kwargs})  # type: ignore[arg-type]


def test_figures_compare_live_quality_with_the_reference_metrics() -> None:
    traffic = TrafficMetrics(100, 120, 1.0, 5, 2, 0.05, 0.02, 10.0, 20.0, 90.0, 120.0)
    quality = QualityMetrics(
        "classification", 120, 60, 0.5, {"accuracy": 0.8, "roc_auc": 0.85, "log_loss": 0.5}
    )
    rng = np.random.default_rng(0)
    reference = {"a": rng.normal(size=500), "b": rng.normal(size=500)}
    live = {"a": rng.normal(size=200) + 2.0, "b": rng.normal(size=200)}
    drift = detect_drift(reference, live)
    values = figures_for(traffic, quality, drift, {"acc": 0.9, "auc": 0.93, "log_loss": 0.3})
    assert values["error_rate"] == 0.05
    assert values["p99_ms"] == 90.0
    assert values["drift_share"] == 0.5
    assert values["dataset_drift"] == 1.0
    assert values["label_coverage"] == 0.5
    assert values["accuracy_drop"] == pytest.approx(0.1)
    assert values["auc_drop"] == pytest.approx(0.08)
    assert values["log_loss_rise"] == pytest.approx(0.2)
    assert "recall_drop" not in values
    assert figures_for(None, None, None) == {}


def test_the_bus_hands_every_event_to_every_subscriber() -> None:
    bus = AlertBus()
    seen: list[int] = []
    broken_calls: list[int] = []

    def broken(event: AlertEvent) -> None:
        broken_calls.append(event.id)
        raise RuntimeError("retraining queue is down")

    alert = Alert(DEPLOYMENT, "r", 1, "error_rate", 0.5, ">", 0.1, 1, 0.0, {})
    bus.subscribe(broken)
    unsubscribe = bus.subscribe(lambda e: seen.append(e.id))
    errors = bus.publish(AlertEvent(7, alert))
    assert seen == [7]
    assert broken_calls == [7]
    assert [str(e) for e in errors] == ["retraining queue is down"]
    unsubscribe()
    bus.publish(AlertEvent(8, alert))
    assert seen == [7]


def test_recorded_alerts_are_published_and_give_back_their_last_firings() -> None:
    repository = InMemoryMonitoringRepository()
    hooked = AlertRule(DEPLOYMENT, "errors", "error_rate", 0.1, webhook_url="https://h.example/a")
    alerts = [
        Alert(DEPLOYMENT, "errors", 1, "error_rate", 0.5, ">", 0.1, 1, 100.0, {}),
        Alert(DEPLOYMENT, "slow", 2, "p99_ms", 900.0, ">", 300.0, 1, 160.0, {}),
    ]
    bus = AlertBus()
    seen: list[AlertEvent] = []
    bus.subscribe(seen.append)
    stored = record_alerts(repository, alerts, [hooked], bus)
    assert [e.alert for e in stored] == alerts
    assert seen == stored
    assert [d.event_id for d in repository.deliveries(state="pending")] == [stored[0].id]
    state = restore_state(repository, DEPLOYMENT, since=120.0)
    assert state.rules == {(DEPLOYMENT, "slow", 2): RuleState(0, 160.0)}
    assert [a["reason"] for a in recent_alerts(repository, DEPLOYMENT, since=0.0)] == [
        "errors: error_rate = 0.5 > 0.1 (v1)",
        "slow: p99_ms = 900 > 300 (v2)",
    ]


def test_a_rule_with_a_bad_webhook_url_records_nothing_and_publishes_nothing() -> None:
    repository = InMemoryMonitoringRepository()
    rule = AlertRule(DEPLOYMENT, "errors", "error_rate", 0.1, webhook_url="ftp://example/a")
    alert = Alert(DEPLOYMENT, "errors", 1, "error_rate", 0.5, ">", 0.1, 1, 100.0, {})
    bus = AlertBus()
    seen: list[AlertEvent] = []
    bus.subscribe(seen.append)
    with pytest.raises(ValidationError, match="must start with http:// or https://"):
        record_alerts(repository, [alert], [rule], bus)
    assert (seen, recent_alerts(repository, DEPLOYMENT, since=0.0)) == ([], [])
