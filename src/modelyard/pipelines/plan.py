"""A deployment's retraining plan: which pipeline, what starts it, what guards it.

Plain data, validated on construction (the message names the field), kept as JSON by
the pipelines repository. The cron expression is parsed by APScheduler's
``CronTrigger`` (standard five fields, UTC unless ``timezone`` says otherwise).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from modelyard.errors import ValidationError
from modelyard.pipelines.gate import GatePolicy
from modelyard.routing.canary import RolloutPolicy

__all__ = ["AbPolicy", "RetrainPlan", "next_fire_after", "parse_schedule"]

_PIPELINE_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
DAY_S = 86_400.0
# A retrained model is meant to decide differently where the world changed: its canary
# is judged on errors, latency and live quality from labels, not on how many decisions
# it changes (the gate already compared it with the champion on held-out labels).
RETRAIN_ROLLOUT = RolloutPolicy(max_decision_change=1.0)
ROLLOUT_KINDS = ("canary", "ab")


@dataclass(frozen=True)
class AbPolicy:
    """How a retrained candidate is A/B tested against the champion (``rollout_kind="ab"``).

    ``metric``: ``ctr`` (a recommender: a list converts when its feedback says
    ``clicked``, judged by ``recommend.experiment.judge_ctr`` with its sample-ratio
    check), or the feedback field (``label`` for the label itself) whose rate the
    deployment's experiment report compares. ``weight``: the candidate's share of
    traffic in %. The always-valid sequential test (``tau``, ``min_samples_per_arm``)
    is looked at every check; the test stops without promotion after ``max_days``.
    """

    metric: str = "ctr"
    weight: float = 50.0
    max_days: float = 7.0
    tau: float = 0.05
    min_samples_per_arm: int = 200

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric:
            raise ValidationError(
                f"ab.metric must name a feedback field or 'ctr', got {self.metric!r}"
            )
        if not _number(self.weight) or not 0 < self.weight < 100:
            raise ValidationError(
                f"ab.weight must be a share in % between 0 and 100, got {self.weight!r}"
            )
        if not _number(self.max_days) or self.max_days <= 0:
            raise ValidationError(f"ab.max_days must be a positive number, got {self.max_days!r}")
        if not _number(self.tau) or self.tau <= 0:
            raise ValidationError(f"ab.tau must be a positive number, got {self.tau!r}")
        _positive_int("ab.min_samples_per_arm", self.min_samples_per_arm)

    @property
    def max_s(self) -> float:
        return self.max_days * DAY_S

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class RetrainPlan:
    """How ``deployment`` is retrained.

    ``pipeline``: ``module:function`` taking a ``PipelineContext`` and returning a
    ``Candidate``. Triggers: ``schedule`` (cron), ``on_drift`` (the champion's drift
    check finds dataset drift ``drift_checks`` times in a row), ``on_alert`` (an alert
    rule of the deployment fires), ``min_new_labels`` (that many labelled predictions
    since the last retrain). ``window_days``: how much data a run trains on, ending
    now. Guard rails: ``cooldown_s`` after a retrain starts, at most ``max_per_day``
    automatic retrains in any 24 h, none while a rollout or an experiment runs.
    ``rollout_kind``: how a registered candidate goes out, ``canary`` (``rollout``: the
    canary's policy; by default any share of changed decisions is allowed, see
    ``RETRAIN_ROLLOUT``) or ``ab`` (an A/B test against the champion, ``ab``: its policy,
    promoted only when it wins).
    """

    deployment: str
    pipeline: str
    schedule: str | None = None
    timezone: str = "UTC"
    on_drift: bool = False
    drift_checks: int = 2
    on_alert: bool = False
    min_new_labels: int | None = None
    window_days: float = 30.0
    seed: int = 0
    cooldown_s: float = 6 * 3600.0
    max_per_day: int = 4
    gate: GatePolicy = field(default_factory=GatePolicy)
    rollout: RolloutPolicy = field(default_factory=lambda: RETRAIN_ROLLOUT)
    rollout_kind: str = "canary"
    ab: AbPolicy = field(default_factory=AbPolicy)

    def __post_init__(self) -> None:
        if self.rollout_kind not in ROLLOUT_KINDS:
            raise ValidationError(
                f"rollout_kind must be one of {', '.join(ROLLOUT_KINDS)}, got {self.rollout_kind!r}"
            )
        if not isinstance(self.pipeline, str) or not _PIPELINE_REF.match(self.pipeline):
            raise ValidationError(
                f"pipeline must be 'module:function' (e.g. 'my_project.train:pipeline'), "
                f"got {self.pipeline!r}"
            )
        if self.schedule is not None:
            parse_schedule(self.schedule, self.timezone)
        _positive_int("drift_checks", self.drift_checks)
        _positive_int("max_per_day", self.max_per_day)
        if self.min_new_labels is not None:
            _positive_int("min_new_labels", self.min_new_labels)
        if not _number(self.window_days) or self.window_days <= 0:
            raise ValidationError(
                f"window_days must be a positive number, got {self.window_days!r}"
            )
        if not _number(self.cooldown_s) or self.cooldown_s < 0:
            raise ValidationError(f"cooldown_s must be a number >= 0, got {self.cooldown_s!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValidationError(f"seed must be an integer, got {self.seed!r}")

    @property
    def window_s(self) -> float:
        return self.window_days * DAY_S

    @property
    def triggers(self) -> list[str]:
        """The automatic triggers this plan has, by name."""
        found = [] if self.schedule is None else [f"schedule {self.schedule!r}"]
        if self.on_drift:
            found.append(f"drift ({self.drift_checks} checks in a row)")
        if self.on_alert:
            found.append("alerts")
        if self.min_new_labels is not None:
            found.append(f"{self.min_new_labels} new labels")
        return found

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["gate"] = self.gate.to_dict()
        data["rollout"] = self.rollout.to_dict()
        data["ab"] = self.ab.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RetrainPlan:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValidationError(
                f"unknown retraining setting(s) {unknown}; known: {sorted(known)}"
            )
        values = dict(data)
        if isinstance(values.get("gate"), Mapping):
            values["gate"] = GatePolicy.from_dict(values["gate"])
        if isinstance(values.get("rollout"), Mapping):
            values["rollout"] = RolloutPolicy.from_dict(values["rollout"])
        if isinstance(values.get("ab"), Mapping):
            try:
                values["ab"] = AbPolicy(**values["ab"])
            except TypeError as error:
                raise ValidationError(f"unknown A/B setting: {error}") from None
        return cls(**values)


def parse_schedule(expression: str, timezone: str = "UTC") -> CronTrigger:
    """The APScheduler trigger of a five-field cron expression (ValidationError if it
    does not parse)."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"timezone {timezone!r} is not a known IANA time zone") from None
    try:
        return CronTrigger.from_crontab(expression, timezone=zone)
    except (ValueError, TypeError) as error:
        raise ValidationError(
            f"schedule {expression!r} is not a cron expression "
            f"(minute hour day month weekday, e.g. '0 3 * * *'): {error}"
        ) from None


def next_fire_after(trigger: CronTrigger, after: float) -> float | None:
    """The first fire time strictly after the UNIX time ``after`` (None: never again)."""
    start = datetime.fromtimestamp(after, tz=trigger.timezone) + timedelta(microseconds=1)
    fire: datetime | None = trigger.get_next_fire_time(None, start)
    return None if fire is None else fire.timestamp()


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"{name} must be an integer >= 1, got {value!r}")


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value
