"""What one run of the fraud demo does, and when: the world, the clock, the pace of
monitoring and rollouts. Pure: ``Scenario.timeline(now)`` places the simulated windows.

Simulated time runs ``speedup`` times faster than the wall clock, so days of card
traffic, chargebacks that take hours and a drift that builds over a day fit in
minutes. The live window lies in the past (it ends at the moment the run is planned):
the server reads each transaction's card features as of the transaction's own time
(the deployment's ``event_time``), which must not be in its future.

The feature store trims stream events older than its longest window (7 days) before
the wall clock, so history and live window together stay within the last 7 days.

``monitor_window_s`` must span about a simulated day: a window of a few simulated
hours has another mix of hours than the training days, which the drift check would
rightly flag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from modelyard.errors import ValidationError

__all__ = ["DEFAULT", "FAST", "SCENARIOS", "Scenario", "Timeline"]

DAY = 86_400.0
HOUR = 3_600.0
_HORIZON_DAYS = 7.0  # the longest feature window (time_since_last_7d)


@dataclass(frozen=True)
class Timeline:
    """The run's simulated windows, UNIX seconds: history ``[history_start, live_start)``
    trains the champion (from ``train_start``, once the feature windows are full);
    ``[live_start, live_end)`` is streamed; both switches flip at ``drift_at``."""

    history_start: float
    train_start: float
    live_start: float
    drift_at: float
    live_end: float


@dataclass(frozen=True)
class Scenario:
    """The knobs of one demo run. Times ending in ``_days`` or ``_delay_s`` are simulated;
    the others are wall-clock seconds."""

    name: str
    cards: int = 2_000
    merchants: int = 200
    fraud_rate: float = 0.02
    seed: int = 7
    history_days: float = 2.0
    warm_up_days: float = 1.0  # of history, before the windows are full: not trained on
    live_days: float = 4.5  # the most the live phase streams; the story ends sooner
    drift_after_days: float = 1.25  # of live traffic before the switches flip
    speedup: float = 3_600.0  # simulated seconds per wall second
    threads: int = 4  # concurrent clients
    # Labels arrive late (chargebacks); compressed from days to hours so that the loop
    # has post-drift labels within the run.
    legit_label_delay_s: float = 3 * HOUR
    fraud_label_delay_s: tuple[float, float] = (0.5 * HOUR, 3 * HOUR)
    monitor_interval_s: float = 3.0
    monitor_window_s: float = 24.0
    # Drift checks in a row before the alert (and so the retrain): long enough for the
    # new fraud's chargebacks to come in, about a simulated day.
    alert_after_checks: int = 10
    # What a retrain trains on: the labelled traffic of the last this many simulated
    # days (a real plan says 30 days; here a day is seconds, and the newest traffic is
    # what shows the new fraud).
    retrain_window_days: float = 1.25
    worker_interval_s: float = 1.0
    rollout_interval_s: float = 4.0
    rollout_min_requests: int = 30
    load_seconds: float = 10.0
    load_connections: int = 8
    price_per_hour: float = 0.10  # what the machine costs, for the cost per prediction
    time_limit_s: float = 300.0  # the live phase stops here whatever happened

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if not math.isfinite(value) or value <= 0:
                raise ValidationError(f"{item.name} must be a positive number, got {value}")
        low, high = self.fraud_label_delay_s
        if not 0 < low <= high:
            raise ValidationError(
                f"fraud_label_delay_s must be (shortest, longest) > 0, got {(low, high)}"
            )
        if self.warm_up_days >= self.history_days:
            raise ValidationError(
                f"warm_up_days ({self.warm_up_days}) must be shorter than history_days "
                f"({self.history_days})"
            )
        if self.drift_after_days >= self.live_days:
            raise ValidationError(
                f"drift_after_days ({self.drift_after_days}) must fall inside the live "
                f"window ({self.live_days} days)"
            )
        if self.history_days + self.live_days > _HORIZON_DAYS - 0.5:
            raise ValidationError(
                "history_days + live_days must stay under 6.5: the feature store keeps "
                "7 days of stream events before the wall clock"
            )

    def timeline(self, now: float) -> Timeline:
        """The windows of a run planned at ``now``, ending there."""
        live_start = now - self.live_days * DAY
        history_start = live_start - self.history_days * DAY
        return Timeline(
            history_start=history_start,
            train_start=history_start + self.warm_up_days * DAY,
            live_start=live_start,
            drift_at=live_start + self.drift_after_days * DAY,
            live_end=now,
        )

    @property
    def wall_per_day_s(self) -> float:
        """Wall seconds one simulated day takes."""
        return DAY / self.speedup


DEFAULT = Scenario("default")
# The same story in under two minutes: fewer cards, a faster clock, quicker checks.
FAST = Scenario(
    "fast",
    cards=1_500,
    speedup=7_200.0,
    drift_after_days=1.0,
    monitor_interval_s=1.5,
    monitor_window_s=12.0,
    alert_after_checks=9,
    rollout_interval_s=2.0,
    rollout_min_requests=20,
    load_seconds=4.0,
    time_limit_s=100.0,
)
SCENARIOS = {s.name: s for s in (DEFAULT, FAST)}
