"""Alert rules over monitoring figures, and their pure evaluation.

``evaluate(rules, figures, state, now)`` is a pure function: each rule is
checked against the figures of every version it covers (one ``Figures`` per
deployment version and window), and fires once ``for_windows`` consecutive
windows breached it, then at most once per ``cooldown_s`` while the breach
lasts. A window without the rule's metric (no labels yet, no drift check)
neither extends nor breaks a streak. Metric drops compare the live figure with
the version's reference metric recorded at registration (``ModelVersion.metrics``)
and are absolute: ``auc_drop > 0.05`` means five points of ROC AUC lost.

What becomes of a firing (an event, webhooks, subscribers) is ``alerts``'s job.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from modelyard.errors import ValidationError

Comparison = Literal[">", ">=", "<", "<="]
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
# figure name -> what it is; ``*_drop`` = reference - live, ``*_rise`` = live - reference
METRICS: dict[str, str] = {
    "requests": "requests in the window",
    "error_rate": "share of requests with status >= 500",
    "client_error_rate": "share of requests with a 4xx status",
    "p50_ms": "median latency (ms)",
    "p99_ms": "99th percentile latency (ms)",
    "drift_share": "share of features drifted",
    "dataset_drift": "1 when the drift check found drift",
    "prediction_drift": "1 when the predictions drifted",
    "label_coverage": "share of rows with a label",
    "accuracy": "live accuracy",
    "roc_auc": "live ROC AUC",
    "log_loss": "live log loss",
    "mae": "live mean absolute error",
    "rmse": "live root mean squared error",
    "accuracy_drop": "reference accuracy - live accuracy",
    "precision_drop": "reference precision - live precision",
    "recall_drop": "reference recall - live recall",
    "f1_drop": "reference F1 - live F1",
    "auc_drop": "reference ROC AUC - live ROC AUC",
    "log_loss_rise": "live log loss - reference log loss",
    "mae_rise": "live MAE - reference MAE",
    "rmse_rise": "live RMSE - reference RMSE",
}


@dataclass(frozen=True)
class AlertRule:
    """``metric comparison threshold`` for ``for_windows`` windows in a row fires an alert."""

    deployment: str
    name: str
    metric: str
    threshold: float
    comparison: Comparison = ">"
    for_windows: int = 1
    cooldown_s: float = 3600.0
    version: int | None = None  # None: every version, each on its own
    webhook_url: str | None = None
    enabled: bool = True

    def __post_init__(self) -> None:
        if not self.name or not self.deployment:
            raise ValidationError("an alert rule needs a deployment and a name")
        if self.metric not in METRICS:
            raise ValidationError(
                f"unknown alert metric {self.metric!r}; choose one of {', '.join(METRICS)}"
            )
        if self.comparison not in _COMPARE:
            raise ValidationError(
                f"comparison must be one of {', '.join(_COMPARE)}, got {self.comparison!r}"
            )
        if not math.isfinite(self.threshold):
            raise ValidationError(f"threshold must be a finite number, got {self.threshold!r}")
        if self.for_windows < 1:
            raise ValidationError(f"for_windows must be >= 1, got {self.for_windows!r}")
        if not self.cooldown_s >= 0:
            raise ValidationError(f"cooldown_s must be >= 0, got {self.cooldown_s!r}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON kept in ``alert_rules.rule``."""
        return {
            "metric": self.metric,
            "comparison": self.comparison,
            "threshold": self.threshold,
            "for_windows": self.for_windows,
            "cooldown_s": self.cooldown_s,
            "version": self.version,
        }

    @classmethod
    def from_dict(
        cls,
        deployment: str,
        name: str,
        spec: Mapping[str, Any],
        *,
        webhook_url: str | None = None,
        enabled: bool = True,
    ) -> AlertRule:
        """The rule ``to_dict`` wrote, with the defaults of the keys older rules lack."""
        return cls(
            deployment=deployment,
            name=name,
            metric=spec["metric"],
            threshold=float(spec["threshold"]),
            comparison=spec.get("comparison", ">"),
            for_windows=int(spec.get("for_windows", 1)),
            cooldown_s=float(spec.get("cooldown_s", 3600.0)),
            version=spec.get("version"),
            webhook_url=webhook_url,
            enabled=enabled,
        )

    def describe(self) -> str:
        scope = "any version" if self.version is None else f"v{self.version}"
        return f"{self.metric} {self.comparison} {self.threshold:g} ({scope})"


@dataclass(frozen=True)
class Figures:
    """What one version of a deployment looked like over one window."""

    deployment: str
    version: int
    values: Mapping[str, float]
    window_start: float = 0.0
    window_end: float = 0.0


@dataclass(frozen=True)
class RuleState:
    streak: int = 0
    last_fired: float | None = None


StateKey = tuple[str, str, int]  # deployment, rule name, version


@dataclass(frozen=True)
class AlertState:
    """Streaks and last firings per (deployment, rule, version); ``evaluate`` returns a new one."""

    rules: Mapping[StateKey, RuleState] = field(default_factory=dict)

    def get(self, key: StateKey) -> RuleState:
        return self.rules.get(key, RuleState())

    def to_dict(self) -> dict[str, Any]:
        return {"rules": [[*k, v.streak, v.last_fired] for k, v in sorted(self.rules.items())]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertState:
        return cls({(d, r, int(v)): RuleState(int(s), f) for d, r, v, s, f in data["rules"]})


@dataclass(frozen=True)
class Alert:
    """One firing of a rule, with the figures it used."""

    deployment: str
    rule: str
    version: int
    metric: str
    value: float
    comparison: str
    threshold: float
    streak: int
    at: float
    figures: dict[str, float]

    @property
    def reason(self) -> str:
        windows = f" for {self.streak} windows" if self.streak > 1 else ""
        return (
            f"{self.rule}: {self.metric} = {self.value:.4g} {self.comparison} "
            f"{self.threshold:g}{windows} (v{self.version})"
        )

    def payload(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "version": self.version,
            "metric": self.metric,
            "value": self.value,
            "comparison": self.comparison,
            "threshold": self.threshold,
            "streak": self.streak,
            "figures": self.figures,
        }


def evaluate(
    rules: Iterable[AlertRule], figures: Iterable[Figures], state: AlertState, now: float
) -> tuple[list[Alert], AlertState]:
    """The alerts that fire on these figures, and the state to pass to the next call.

    ``figures`` are the windows evaluated now (at most one per deployment and
    version); a rule covers those of its deployment and version (any, if None).
    """
    windows = list(figures)
    fired: list[Alert] = []
    updated = dict(state.rules)
    for rule in rules:
        if not rule.enabled:
            continue
        for seen in windows:
            if seen.deployment != rule.deployment:
                continue
            if rule.version is not None and seen.version != rule.version:
                continue
            value = seen.values.get(rule.metric)
            if value is None or math.isnan(value):
                continue
            key = (rule.deployment, rule.name, seen.version)
            current = state.get(key)
            if not _COMPARE[rule.comparison](value, rule.threshold):
                updated[key] = replace(current, streak=0)
                continue
            streak = current.streak + 1
            cooled = current.last_fired is None or now - current.last_fired >= rule.cooldown_s
            if streak >= rule.for_windows and cooled:
                updated[key] = RuleState(streak, now)
                fired.append(
                    Alert(
                        seen.deployment,
                        rule.name,
                        seen.version,
                        rule.metric,
                        float(value),
                        rule.comparison,
                        rule.threshold,
                        streak,
                        now,
                        dict(seen.values),
                    )
                )
            else:
                updated[key] = replace(current, streak=streak)
    return fired, AlertState(updated)
