"""Whether a deployment's retraining starts now: its triggers against its guard rails.

Pure: ``decide`` takes the plan, ``Signals`` (what the loop observed, as plain data,
with the time passed in) and whether a person asked, and returns a ``TriggerDecision``
naming the trigger that fired, or what held it back. Tested on simulated time.

Order of precedence: a running retrain or rollout holds everything (one change at a
time); a person's request then goes ahead (they chose the moment); automatic triggers
also respect the cool-down and the daily cap. A held drift, alert or label trigger
fires at the next check after the hold ends, because its signal is still there; a
held schedule waits for its next time.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelyard.pipelines.plan import DAY_S, RetrainPlan, next_fire_after, parse_schedule

__all__ = ["Signals", "TriggerDecision", "decide", "schedule_due"]


@dataclass(frozen=True)
class Signals:
    """What the loop saw for one deployment at ``now``.

    ``retrain_starts``: when the recent retrains started (any outcome), newest last.
    ``drifted_in_a_row``: the champion's latest drift checks since the last retrain that
    found dataset drift, counted back from the newest (0: the newest did not).
    ``alert``: the reason of the first alert since the last retrain, if any.
    ``schedule_due_at``: a cron time in ``(last check, now]``, if one passed.
    """

    now: float
    retrain_starts: tuple[float, ...] = ()
    retrain_running: bool = False
    rollout_active: bool = False
    experiment_active: bool = False  # its candidate could not go out either
    drifted_in_a_row: int = 0
    drift_reason: str = ""
    alert: str | None = None
    new_labels: int = 0
    schedule_due_at: float | None = None


@dataclass(frozen=True)
class TriggerDecision:
    """``start``: retrain now, because of ``trigger`` (``reason`` says what it saw).
    Otherwise ``held`` says what kept a firing trigger back (None: nothing fired)."""

    start: bool
    trigger: str | None = None
    reason: str = ""
    held: str | None = None


def decide(plan: RetrainPlan, signals: Signals, *, manual: bool = False) -> TriggerDecision:
    """Should ``plan``'s deployment retrain now?"""
    fired = [("manual", "asked by an operator")] if manual else _fired(plan, signals)
    if not fired:
        return TriggerDecision(False)
    trigger, reason = fired[0]
    hold = _hold(plan, signals, manual)
    if hold is not None:
        return TriggerDecision(False, trigger, reason, hold)
    return TriggerDecision(True, trigger, reason)


def schedule_due(plan: RetrainPlan, last_checked: float | None, now: float) -> float | None:
    """The latest cron time of ``plan`` in ``(last_checked, now]`` (None: none passed, or
    no schedule). Times missed while nothing checked fold into one run; a plan never
    checked before starts counting from ``now``."""
    if plan.schedule is None or last_checked is None:
        return None
    trigger = parse_schedule(plan.schedule, plan.timezone)
    due = None
    fire = next_fire_after(trigger, last_checked)
    while fire is not None and fire <= now:
        due = fire
        fire = next_fire_after(trigger, fire)
    return due


def _fired(plan: RetrainPlan, signals: Signals) -> list[tuple[str, str]]:
    fired = []
    if plan.on_drift and signals.drifted_in_a_row >= plan.drift_checks:
        fired.append(
            ("drift", signals.drift_reason or f"{signals.drifted_in_a_row} drifted checks")
        )
    if plan.on_alert and signals.alert is not None:
        fired.append(("alert", signals.alert))
    if plan.min_new_labels is not None and signals.new_labels >= plan.min_new_labels:
        fired.append(
            ("labels", f"{signals.new_labels} new labels (at least {plan.min_new_labels})")
        )
    if signals.schedule_due_at is not None:
        fired.append(("schedule", f"schedule {plan.schedule!r}"))
    return fired


def _hold(plan: RetrainPlan, signals: Signals, manual: bool) -> str | None:
    if signals.retrain_running:
        return "a retrain of this deployment is running"
    if signals.rollout_active:
        return "a rollout is in progress"
    if signals.experiment_active:
        return "an experiment is in progress"
    if manual:
        return None
    starts = signals.retrain_starts
    if starts and signals.now - starts[-1] < plan.cooldown_s:
        left = plan.cooldown_s - (signals.now - starts[-1])
        return f"cool-down: {left / 60:.0f} min left of {plan.cooldown_s / 60:.0f}"
    today = [t for t in starts if signals.now - t < DAY_S]
    if len(today) >= plan.max_per_day:
        return f"{len(today)} retrains in the last 24 h, the cap is {plan.max_per_day}"
    return None
