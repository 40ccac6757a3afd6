"""When a plan retrains: triggers against guard rails, cron on simulated time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from modelyard.errors import ValidationError
from modelyard.pipelines import RetrainPlan, Signals, decide, schedule_due

HOUR = 3600.0


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def plan(**overrides: object) -> RetrainPlan:
    values: dict[str, object] = {"deployment": "fraud", "pipeline": "project.train:pipeline"}
    values.update(overrides)
    return RetrainPlan(**values)  # type: ignore[arg-type]


NOW = at("2026-12-07T14:02:00")


def test_nothing_fired_means_no_retrain() -> None:
    decision = decide(plan(on_drift=True, on_alert=True, min_new_labels=100), Signals(NOW))
    assert decision.start is False
    assert decision.trigger is None
    assert decision.held is None


def test_drift_fires_after_the_checks_in_a_row_the_plan_asks_for() -> None:
    drifting = plan(on_drift=True, drift_checks=2)
    one = Signals(NOW, drifted_in_a_row=1, drift_reason="drift in amount_1h")
    two = Signals(NOW, drifted_in_a_row=2, drift_reason="drift in amount_1h")
    assert not decide(drifting, one).start
    decision = decide(drifting, two)
    assert (decision.start, decision.trigger, decision.reason) == (
        True,
        "drift",
        "drift in amount_1h",
    )


def test_alerts_and_labels_fire_only_when_the_plan_has_them() -> None:
    signals = Signals(NOW, alert="accuracy < 0.8 (v1)", new_labels=500)
    assert not decide(plan(), signals).start
    assert decide(plan(on_alert=True), signals).trigger == "alert"
    labelled = decide(plan(min_new_labels=500), signals)
    assert labelled.trigger == "labels"
    assert labelled.reason == "500 new labels (at least 500)"
    assert not decide(plan(min_new_labels=501), signals).start


@pytest.mark.parametrize(
    ("signals", "held"),
    [
        (Signals(NOW, drifted_in_a_row=2, retrain_running=True), "a retrain of this deployment"),
        (Signals(NOW, drifted_in_a_row=2, rollout_active=True), "a rollout is in progress"),
        (Signals(NOW, drifted_in_a_row=2, experiment_active=True), "an experiment is in"),
        (Signals(NOW, drifted_in_a_row=2, retrain_starts=(NOW - 2 * HOUR,)), "cool-down: 240 min"),
        (
            Signals(NOW, drifted_in_a_row=2, retrain_starts=(NOW - 20 * HOUR, NOW - 7 * HOUR)),
            "2 retrains in the last 24 h, the cap is 2",
        ),
    ],
)
def test_guard_rails_hold_a_fired_trigger_and_say_why(signals: Signals, held: str) -> None:
    decision = decide(plan(on_drift=True, max_per_day=2), signals)
    assert decision.start is False
    assert decision.trigger == "drift"
    assert decision.held is not None
    assert decision.held.startswith(held)


def test_the_cool_down_ends_and_the_still_present_signal_fires() -> None:
    last = NOW - 6 * HOUR
    assert decide(
        plan(on_drift=True), Signals(NOW, drifted_in_a_row=2, retrain_starts=(last,))
    ).start


def test_a_person_skips_the_cool_down_and_the_cap_but_not_a_running_rollout() -> None:
    busy = Signals(NOW, retrain_starts=(NOW - 60.0,) * 5)
    assert decide(plan(), busy, manual=True).start
    rolling = decide(plan(), Signals(NOW, rollout_active=True), manual=True)
    assert (rolling.start, rolling.held) == (False, "a rollout is in progress")


def test_a_schedule_is_due_once_its_time_passed_since_the_last_check() -> None:
    nightly = plan(schedule="0 3 * * *")
    assert schedule_due(nightly, at("2026-12-07T02:59:30"), at("2026-12-07T03:00:00")) == at(
        "2026-12-07T03:00:00"
    )
    assert schedule_due(nightly, at("2026-12-07T03:00:00"), at("2026-12-07T03:00:30")) is None
    assert schedule_due(nightly, None, NOW) is None  # never checked: counts from now on
    assert schedule_due(plan(), at("2026-12-01T00:00:00"), NOW) is None


def test_schedules_missed_while_nothing_checked_fold_into_one() -> None:
    nightly = plan(schedule="0 3 * * *")
    due = schedule_due(nightly, at("2026-12-01T12:00:00"), NOW)
    assert due == at("2026-12-07T03:00:00")
    decision = decide(nightly, Signals(NOW, schedule_due_at=due))
    assert (decision.start, decision.trigger) == (True, "schedule")


def test_a_schedule_runs_in_its_time_zone() -> None:
    paris = plan(schedule="0 3 * * *", timezone="Europe/Paris")  # 02:00 UTC in winter
    assert schedule_due(paris, at("2026-12-07T01:59:00"), at("2026-12-07T02:00:00")) == at(
        "2026-12-07T02:00:00"
    )


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"schedule": "0 3 * *"}, r"schedule '0 3 \* \*' is not a cron expression"),
        ({"schedule": "61 * * * *"}, "is not a cron expression"),
        ({"timezone": "Mars/Olympus", "schedule": "0 3 * * *"}, "not a known IANA time zone"),
        ({"pipeline": "train.py"}, "pipeline must be 'module:function'"),
        ({"drift_checks": 0}, "drift_checks must be an integer >= 1"),
        ({"min_new_labels": -5}, "min_new_labels must be an integer >= 1"),
        ({"window_days": 0}, "window_days must be a positive number"),
        ({"cooldown_s": -1}, "cooldown_s must be a number >= 0"),
    ],
)
def test_a_bad_plan_is_refused_naming_the_field(settings: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        plan(**settings)


def test_a_plan_survives_its_json() -> None:
    original = plan(schedule="*/15 * * * *", on_drift=True, min_new_labels=1000, seed=7)
    assert RetrainPlan.from_dict(original.to_dict()) == original
    assert original.triggers == [
        "schedule '*/15 * * * *'",
        "drift (2 checks in a row)",
        "1000 new labels",
    ]
