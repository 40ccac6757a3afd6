"""Canary analysis: the gates that judge one arm's traffic against the champion's.

Each gate takes the limits (a ``RolloutPolicy`` satisfies ``Limits``), the
champion's and the canary's ``ArmTraffic`` over one analysis window, and
returns a ``CheckResult``. Every gate judges the canary against noise, not
against a raw line:

* ``passed``: no significant evidence of harm (or the effect is too small to matter);
* ``failed``: significant at ``alpha``;
* ``breached``: significant even at ``rollback_alpha``;
* ``skipped``: the data for it is missing (no latency samples, no champion traffic).

What an outcome leads to (hold, roll back) is ``canary.decide``'s business.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist
from typing import Protocol

import numpy as np
import numpy.typing as npt
from scipy import stats
from scipy.spatial.distance import jensenshannon

from modelyard.errors import ValidationError

__all__ = [
    "CHECKS",
    "Check",
    "CheckResult",
    "Figure",
    "Limits",
    "ArmTraffic",
    "Outcome",
    "check_divergence",
    "check_error_rate",
    "check_error_rate_vs_champion",
    "check_p99",
    "check_p99_vs_champion",
    "divergence",
    "grade",
    "p99",
    "quantile_lower",
    "run_checks",
    "wilson_lower",
]

Figure = float | int | str | None
FloatArray = npt.NDArray[np.float64]

# Below this many latency samples per arm the rank and tail tests say little.
_MIN_LATENCY_SAMPLES = 20


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    BREACHED = "breached"
    SKIPPED = "skipped"


class Limits(Protocol):
    """What the gates read from a policy; ``canary.RolloutPolicy`` is one."""

    @property
    def max_error_rate(self) -> float: ...
    @property
    def max_p99_ms(self) -> float: ...
    @property
    def max_p99_ratio(self) -> float: ...
    @property
    def max_prediction_divergence(self) -> float: ...
    @property
    def alpha(self) -> float: ...
    @property
    def rollback_alpha(self) -> float: ...


@dataclass(frozen=True, eq=False)
class ArmTraffic:
    """One arm's traffic over the analysis window.

    ``latency_samples_ms`` may be a reservoir sample; ``p99_ms``, when the monitor
    computed it exactly, takes precedence over the samples' p99. Predictions come as a
    1-D sample (compared by two-sample KS) or as counts over bins shared by both arms
    (compared by Jensen-Shannon distance).
    """

    request_count: int
    error_count: int
    latency_samples_ms: FloatArray | None = None
    p99_ms: float | None = None
    prediction_sample: FloatArray | None = None
    prediction_histogram: FloatArray | None = None

    def __post_init__(self) -> None:
        for name in ("request_count", "error_count"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise ValidationError(f"{name} must be a non-negative integer, got {value!r}")
        if self.error_count > self.request_count:
            raise ValidationError(
                f"error_count must not exceed request_count, "
                f"got {self.error_count} errors of {self.request_count}"
            )
        if self.p99_ms is not None and not (math.isfinite(self.p99_ms) and self.p99_ms >= 0):
            raise ValidationError(f"p99_ms must be a non-negative number, got {self.p99_ms!r}")
        for name in ("latency_samples_ms", "prediction_sample", "prediction_histogram"):
            raw = getattr(self, name)
            if raw is None:
                continue
            array = np.asarray(raw, dtype=np.float64)
            if array.ndim != 1 or not np.isfinite(array).all():
                raise ValidationError(f"{name} must be a 1-D array of finite numbers")
            if name != "prediction_sample" and (array < 0).any():
                raise ValidationError(f"{name} must not contain negative values")
            object.__setattr__(self, name, array)

    @property
    def error_rate(self) -> float:
        return self.error_count / self.request_count if self.request_count else 0.0


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one gate, with a sentence and the figures behind it."""

    name: str
    outcome: Outcome
    summary: str
    figures: Mapping[str, Figure]


Check = Callable[[Limits, ArmTraffic, ArmTraffic], CheckResult]


def run_checks(limits: Limits, champion: ArmTraffic, canary: ArmTraffic) -> tuple[CheckResult, ...]:
    """Every gate of ``CHECKS``, in order."""
    return tuple(check(limits, champion, canary) for check in CHECKS)


def grade(limits: Limits, p_value: float, material: bool) -> Outcome:
    """Map a one-sided p-value (and whether the effect is big enough to matter) to an outcome."""
    if not material or p_value >= limits.alpha:
        return Outcome.PASSED
    return Outcome.BREACHED if p_value < limits.rollback_alpha else Outcome.FAILED


def wilson_lower(errors: int, n: int, alpha: float) -> float:
    """One-sided Wilson lower bound of a proportion at confidence 1 - alpha."""
    z = NormalDist().inv_cdf(1 - alpha)
    p = errors / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - spread) / (1 + z * z / n))


def quantile_lower(sorted_sample: FloatArray, q: float, alpha: float) -> float | None:
    """Distribution-free lower bound of the q-quantile at confidence 1 - alpha.

    The k-th order statistic lies below the true quantile with probability
    P(Binomial(n, q) >= k); k = binom.ppf(alpha, n, q) keeps that above 1 - alpha.
    """
    k = int(stats.binom.ppf(alpha, len(sorted_sample), q))
    return float(sorted_sample[k - 1]) if k >= 1 else None


def p99(snapshot: ArmTraffic) -> float | None:
    """The arm's p99 latency: the exact figure if given, else the samples' p99, else None."""
    if snapshot.p99_ms is not None:
        return snapshot.p99_ms
    samples = snapshot.latency_samples_ms
    return float(np.quantile(samples, 0.99)) if samples is not None and samples.size else None


def check_error_rate(limits: Limits, champion: ArmTraffic, canary: ArmTraffic) -> CheckResult:
    name = "error_rate"
    if canary.request_count == 0:
        return CheckResult(name, Outcome.SKIPPED, "no canary requests", {})
    n, e = canary.request_count, canary.error_count
    soft, hard = (wilson_lower(e, n, a) for a in (limits.alpha, limits.rollback_alpha))
    outcome = Outcome.PASSED
    if hard > limits.max_error_rate:
        outcome = Outcome.BREACHED
    elif soft > limits.max_error_rate:
        outcome = Outcome.FAILED
    summary = (
        f"canary error rate {canary.error_rate:.2%} ({e}/{n}), lower bound {soft:.2%} "
        f"vs max_error_rate {limits.max_error_rate:.2%}"
    )
    figures = {"canary": canary.error_rate, "lower_bound": soft, "limit": limits.max_error_rate}
    return CheckResult(name, outcome, summary, figures)


def check_error_rate_vs_champion(
    limits: Limits, champion: ArmTraffic, canary: ArmTraffic
) -> CheckResult:
    name = "error_rate_vs_champion"
    if canary.request_count == 0 or champion.request_count == 0:
        return CheckResult(name, Outcome.SKIPPED, "an arm has no requests", {})
    # Fisher's exact test stays honest at the tiny error counts a healthy service has.
    table = [
        [canary.error_count, canary.request_count - canary.error_count],
        [champion.error_count, champion.request_count - champion.error_count],
    ]
    p = float(stats.fisher_exact(table, alternative="greater").pvalue)
    outcome = grade(limits, p, canary.error_rate > champion.error_rate)
    summary = (
        f"canary error rate {canary.error_rate:.2%} ({canary.error_count}/{canary.request_count}) "
        f"vs champion {champion.error_rate:.2%} "
        f"({champion.error_count}/{champion.request_count}), Fisher one-sided p={p:.2g}"
    )
    figures = {"canary": canary.error_rate, "champion": champion.error_rate, "p_value": p}
    return CheckResult(name, outcome, summary, figures)


def check_p99(limits: Limits, champion: ArmTraffic, canary: ArmTraffic) -> CheckResult:
    name = "p99"
    ours = p99(canary)
    if ours is None:
        return CheckResult(name, Outcome.SKIPPED, "no canary latency data", {})
    samples = canary.latency_samples_ms
    figures: dict[str, Figure] = {"canary_ms": ours, "limit_ms": limits.max_p99_ms}
    if samples is None or samples.size == 0:
        # An exact p99 without samples carries no error bar: over the line fails, never breaches.
        outcome = Outcome.FAILED if ours > limits.max_p99_ms else Outcome.PASSED
        return CheckResult(
            name, outcome, f"canary p99 {ours:.0f}ms vs max {limits.max_p99_ms:.0f}ms", figures
        )
    ordered = np.sort(samples)
    soft = quantile_lower(ordered, 0.99, limits.alpha)
    hard = quantile_lower(ordered, 0.99, limits.rollback_alpha)
    outcome = Outcome.PASSED
    if hard is not None and hard > limits.max_p99_ms:
        outcome = Outcome.BREACHED
    elif soft is not None and soft > limits.max_p99_ms:
        outcome = Outcome.FAILED
    figures["lower_bound_ms"] = soft
    bound = "n/a" if soft is None else f"{soft:.0f}ms"
    summary = (
        f"canary p99 {ours:.0f}ms (lower bound {bound}) vs max_p99_ms {limits.max_p99_ms:.0f}ms"
    )
    return CheckResult(name, outcome, summary, figures)


def check_p99_vs_champion(limits: Limits, champion: ArmTraffic, canary: ArmTraffic) -> CheckResult:
    name = "p99_vs_champion"
    ours, theirs = p99(canary), p99(champion)
    if ours is None or theirs is None:
        return CheckResult(name, Outcome.SKIPPED, "an arm has no latency data", {})
    ratio = ours / theirs if theirs > 0 else math.inf
    figures: dict[str, Figure] = {"canary_ms": ours, "champion_ms": theirs, "ratio": ratio}
    material = ratio > limits.max_p99_ratio
    summary = (
        f"canary p99 {ours:.0f}ms vs champion {theirs:.0f}ms "
        f"(x{ratio:.2f}, max x{limits.max_p99_ratio:g})"
    )
    c, b = canary.latency_samples_ms, champion.latency_samples_ms
    if c is None or b is None or min(c.size, b.size) < _MIN_LATENCY_SAMPLES:
        outcome = Outcome.FAILED if material else Outcome.PASSED
        return CheckResult(name, outcome, summary, figures)
    # Mann-Whitney (as Kayenta) sees a shifted body; a Fisher test on exceedances of the
    # pooled p99 sees a fattened tail. Bonferroni over the two keeps the level at alpha.
    p_rank = float(stats.mannwhitneyu(c, b, alternative="greater").pvalue)
    cut = float(np.quantile(np.concatenate([c, b]), 0.99))
    above_c, above_b = int((c > cut).sum()), int((b > cut).sum())
    tail = [[above_c, c.size - above_c], [above_b, b.size - above_b]]
    p_tail = float(stats.fisher_exact(tail, alternative="greater").pvalue)
    p = min(1.0, 2 * min(p_rank, p_tail))
    figures.update({"p_value": p, "mann_whitney_p": p_rank, "tail_p": p_tail})
    return CheckResult(name, grade(limits, p, material), f"{summary}, p={p:.2g}", figures)


def divergence(champion: ArmTraffic, canary: ArmTraffic) -> tuple[str, float, float] | None:
    """(method, statistic in [0, 1], p-value) comparing the arms' predictions, if both have some.

    The single call site for prediction drift: swap in the monitoring context's
    statistics here once it provides them.
    """
    a, b = canary.prediction_sample, champion.prediction_sample
    if a is not None and b is not None and a.size and b.size:
        method = "exact" if a.size * b.size <= 10_000 else "asymp"
        result = stats.ks_2samp(a, b, method=method)
        return "ks", float(result.statistic), float(result.pvalue)
    h, g = canary.prediction_histogram, champion.prediction_histogram
    if h is not None and g is not None and h.size == g.size and h.sum() > 0 and g.sum() > 0:
        distance = float(jensenshannon(h, g, base=2))
        table = np.vstack([h, g])[:, (h + g) > 0]
        p = 1.0
        if table.shape[1] >= 2:
            p = float(stats.chi2_contingency(table, correction=False).pvalue)
        return "jensen_shannon", distance, p
    return None


def check_divergence(limits: Limits, champion: ArmTraffic, canary: ArmTraffic) -> CheckResult:
    name = "prediction_divergence"
    found = divergence(champion, canary)
    if found is None:
        return CheckResult(name, Outcome.SKIPPED, "no comparable prediction data", {})
    method, statistic, p = found
    outcome = grade(limits, p, statistic > limits.max_prediction_divergence)
    summary = (
        f"prediction divergence ({method}) {statistic:.3f} vs max "
        f"{limits.max_prediction_divergence:g}, p={p:.2g}"
    )
    figures: dict[str, Figure] = {"method": method, "statistic": statistic, "p_value": p}
    return CheckResult(name, outcome, summary, figures)


CHECKS: tuple[Check, ...] = (
    check_error_rate,
    check_error_rate_vs_champion,
    check_p99,
    check_p99_vs_champion,
    check_divergence,
)
