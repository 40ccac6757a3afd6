"""The validation gate: may a freshly trained candidate go out as a canary?

Pure: it takes figures measured on the same held-out rows (the candidate's and the
champion's metrics, how many outputs were not finite, the candidate's latency on a
sample, how its inputs differ from the deployment's) and returns a verdict holding
every check. The metric rule is MLflow's ``MetricThreshold``: an absolute floor
(``threshold``) and a margin over the champion, absolute (``min_absolute_change``)
and/or relative (``min_relative_change``), in the metric's direction. With the metric
``none`` no offline figure is compared (a recommender's ranked lists are not scored
here): the other checks still hold, and the live A/B test is the judge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from modelyard.errors import ValidationError

__all__ = ["METRICS", "NO_METRIC", "GateCheck", "GateEvidence", "GatePolicy", "GateResult", "judge"]

# The metrics a gate can judge on (``monitoring.live_metrics.score_outputs`` computes
# them) and whether a larger value is better.
METRICS: dict[str, bool] = {
    "roc_auc": True,
    "accuracy": True,
    "f1": True,
    "precision": True,
    "recall": True,
    "log_loss": False,
    "mae": False,
    "rmse": False,
}
NO_METRIC = "none"


@dataclass(frozen=True)
class GatePolicy:
    """What a candidate must show on the held-out rows before it is registered.

    ``min_absolute_change`` / ``min_relative_change``: how much better than the champion
    (0.0: at least as good; None: no such condition). ``threshold``: a floor (a ceiling
    for losses) the candidate's metric must reach whatever the champion does.
    ``confidence``: the candidate's gain must hold at the lower bound of a paired bootstrap
    interval over the held-out rows (None: the point estimate is enough), so that a copy
    of the champion does not pass on a lucky split. ``max_latency_ms``: the p99 of
    one-row predictions on a sample of the held-out rows.
    """

    metric: str = "roc_auc"
    min_absolute_change: float | None = 0.0
    min_relative_change: float | None = None
    threshold: float | None = None
    confidence: float | None = 0.95
    max_latency_ms: float = 50.0
    latency_sample: int = 200
    min_holdout_rows: int = 100

    def __post_init__(self) -> None:
        if self.metric not in METRICS and self.metric != NO_METRIC:
            raise ValidationError(
                f"gate metric {self.metric!r} is unknown; choose one of {', '.join(METRICS)} "
                f"or {NO_METRIC}"
            )
        for name in ("min_absolute_change", "min_relative_change", "threshold"):
            value = getattr(self, name)
            if value is not None and not _is_number(value):
                raise ValidationError(f"gate {name} must be a number or None, got {value!r}")
        if self.confidence is not None and not (
            _is_number(self.confidence) and 0.5 <= self.confidence < 1
        ):
            raise ValidationError(
                f"gate confidence must be in [0.5, 1) or None, got {self.confidence!r}"
            )
        if not _is_number(self.max_latency_ms) or self.max_latency_ms <= 0:
            raise ValidationError(
                f"gate max_latency_ms must be a positive number, got {self.max_latency_ms!r}"
            )
        for name in ("latency_sample", "min_holdout_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationError(f"gate {name} must be an integer >= 1, got {value!r}")

    @property
    def greater_is_better(self) -> bool:
        return METRICS.get(self.metric, True)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GatePolicy:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValidationError(f"unknown gate setting(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(data))


@dataclass(frozen=True)
class GateEvidence:
    """What was measured on the held-out rows. ``champion`` is None when the deployment
    has none to beat (its first model). ``gain_lower_bound``: the lower bound of the
    candidate's gain over the champion on the policy's metric (in its better direction)
    at the policy's confidence, from a paired bootstrap (None: not measured)."""

    candidate: Mapping[str, float]
    champion: Mapping[str, float] | None
    holdout_rows: int
    non_finite_outputs: int
    latency_p99_ms: float
    signature_problem: str | None = None
    gain_lower_bound: float | None = None


@dataclass(frozen=True)
class GateCheck:
    """One condition of the gate: its figure, its limit, and whether it held."""

    name: str
    passed: bool
    value: float | str | None
    limit: float | str | None
    detail: str


@dataclass(frozen=True)
class GateResult:
    """The gate's verdict, every check, and one sentence saying why."""

    passed: bool
    checks: tuple[GateCheck, ...]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reason": self.reason,
            "checks": [asdict(c) for c in self.checks],
        }


def judge(policy: GatePolicy, evidence: GateEvidence) -> GateResult:
    """Every check of ``policy`` on ``evidence``; the candidate passes when all hold."""
    checks = [
        _holdout(policy, evidence),
        _signature(evidence),
        _finite(evidence),
        _latency(policy, evidence),
        *_metric(policy, evidence),
    ]
    failed = [c for c in checks if not c.passed]
    if failed:
        return GateResult(False, tuple(checks), "; ".join(c.detail for c in failed))
    comparison = next((c for c in checks if c.name == "beats_champion"), None)
    reason = (
        comparison.detail
        if comparison
        else next(
            (c.detail for c in checks if c.name == "metric"),
            "passed the checks (no offline metric compared: live traffic judges it)",
        )
    )
    return GateResult(True, tuple(checks), reason)


def _holdout(policy: GatePolicy, evidence: GateEvidence) -> GateCheck:
    rows, need = evidence.holdout_rows, policy.min_holdout_rows
    passed = rows >= need
    detail = f"{rows} held-out rows" + ("" if passed else f", fewer than the {need} needed")
    return GateCheck("holdout_rows", passed, rows, need, detail)


def _signature(evidence: GateEvidence) -> GateCheck:
    problem = evidence.signature_problem
    detail = "inputs match the deployment" if problem is None else f"inputs differ: {problem}"
    return GateCheck("signature", problem is None, problem, None, detail)


def _finite(evidence: GateEvidence) -> GateCheck:
    bad = evidence.non_finite_outputs
    detail = "every output finite" if not bad else f"{bad} outputs are NaN or infinite"
    return GateCheck("finite_outputs", bad == 0, bad, 0, detail)


def _latency(policy: GatePolicy, evidence: GateEvidence) -> GateCheck:
    p99, budget = evidence.latency_p99_ms, policy.max_latency_ms
    passed = p99 <= budget
    detail = f"p99 {p99:.2f} ms on one-row predictions" + (
        "" if passed else f", over the {budget:g} ms budget"
    )
    return GateCheck("latency_p99_ms", passed, p99, budget, detail)


def _metric(policy: GatePolicy, evidence: GateEvidence) -> list[GateCheck]:
    name = policy.metric
    if name == NO_METRIC:
        return []
    value = evidence.candidate.get(name)
    if value is None:
        got = ", ".join(sorted(evidence.candidate)) or "none"
        return [GateCheck("metric", False, None, None, f"the candidate has no {name} (got {got})")]
    better = policy.greater_is_better
    checks = [GateCheck("metric", True, value, None, f"{name} {value:.4g}")]
    if policy.threshold is not None:
        passed = value >= policy.threshold if better else value <= policy.threshold
        word = "at least" if better else "at most"
        detail = f"{name} {value:.4g}, must be {word} {policy.threshold:g}"
        checks.append(GateCheck("threshold", passed, value, policy.threshold, detail))
    champion = None if evidence.champion is None else evidence.champion.get(name)
    if champion is None:
        if evidence.champion is not None:
            checks.append(
                GateCheck(
                    "beats_champion",
                    True,
                    value,
                    None,
                    f"{name} {value:.4g}; the champion has none",
                )
            )
        return checks
    gain = value - champion if better else champion - value
    versus = f"{name} {value:.4g} vs {champion:.4g}"
    wanted = []
    passed = True
    if policy.min_absolute_change is not None:
        wanted.append(f"by {policy.min_absolute_change:g}")
        passed &= gain >= policy.min_absolute_change
    if policy.min_relative_change is not None:
        relative = gain / abs(champion) if champion else (0.0 if gain == 0 else float("inf"))
        wanted.append(f"by {policy.min_relative_change:.2%}")
        passed &= relative >= policy.min_relative_change
    bound = evidence.gain_lower_bound
    if policy.confidence is not None and bound is not None:
        # A tie is no win: at a zero margin the bound must be above zero.
        floor = policy.min_absolute_change or 0.0
        sure = bound > floor if floor == 0 else bound >= floor
        if not sure:
            wanted.append(f"with {policy.confidence:.0%} confidence (gain >= {bound:+.4g})")
        passed &= sure
        versus += f", gain {gain:+.4g} (>= {bound:+.4g} at {policy.confidence:.0%})"
    detail = (
        f"beat the champion on {versus}"
        if passed
        else f"does not beat the champion {' and '.join(wanted)}: {versus}"
    )
    checks.append(GateCheck("beats_champion", passed, gain, policy.min_absolute_change, detail))
    return checks


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value
