"""Canary analysis: the gates that judge one arm's traffic against the champion's.

Each gate takes the limits (a ``RolloutPolicy`` satisfies ``Limits``), the
champion's and the canary's ``ArmTraffic`` over one analysis window, and
returns a ``CheckResult``: the measured ``value``, the ``limit`` it is held to, the
confidence ``bound`` that decided, and an outcome. A gate fails a canary only when
the harm is both *material* (past the limit, an effect size) and *significant*
(the bound is past the limit too), in the way Kayenta judges effect and
significance together rather than a raw threshold per interval as Flagger does
(docs/rollouts.md says why):

* ``passed``: no significant evidence of material harm;
* ``failed``: significant at ``alpha``;
* ``breached``: significant even at ``rollback_alpha``;
* ``warned``: a warning-level check (score divergence, unless made a gate) saw a change;
* ``skipped``: the data for it is missing (no latency samples, no labels yet).

The gates:

* ``error_rate``: the canary's server errors (status >= 500, shed requests
  included) against ``max_error_rate``, on a Wilson lower bound;
* ``error_rate_vs_champion``: Fisher's exact test, canary against champion;
* ``p99``: the canary's p99 against ``max_p99_ms``, on a distribution-free lower bound;
* ``p99_vs_champion``: slower than the champion by more than
  ``max_p99_increase_ms`` *and* ``max_p99_ratio`` (saturated servers queue, and
  thousands of samples make a 0.5 ms difference "significant"; it is not harm);
* ``decisions``: the share of the canary's requests whose decision (label, or
  argmax of probabilities) the champion would have made differently on the same
  inputs, against ``max_decision_change``;
* ``live_quality``: once labels arrive, the canary's error rate (classifiers) or
  mean absolute error (regressors) against the champion's, failing when worse by
  more than ``max_accuracy_drop`` / ``max_error_increase`` with confidence;
* ``prediction_divergence``: KS on scores or Jensen-Shannon on histograms: a
  warning, because a retrained model is expected to score differently; a gate
  only with ``divergence_gate``.

A rollout looks at its canary many times; ``spent_level`` gives the level of the
k-th look so the looks together spend at most ``alpha`` (see ``canary.decide``).
What an outcome leads to (hold, roll back) is ``canary.decide``'s business.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from statistics import NormalDist
from typing import Any, Protocol

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
    "check_decisions",
    "check_divergence",
    "check_error_rate",
    "check_error_rate_vs_champion",
    "check_live_quality",
    "check_p99",
    "check_p99_vs_champion",
    "divergence",
    "grade",
    "p99",
    "quantile_lower",
    "run_checks",
    "spent_level",
    "wilson_lower",
]

Figure = float | int | str | None
FloatArray = npt.NDArray[np.float64]

# Below this many labelled rows per arm a difference of live quality says little.
MIN_LABELLED = 30
# Below this many latency samples per arm the rank and tail tests say little.
_MIN_LATENCY_SAMPLES = 20


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    BREACHED = "breached"
    WARNED = "warned"
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
    def max_p99_increase_ms(self) -> float: ...
    @property
    def max_decision_change(self) -> float: ...
    @property
    def max_accuracy_drop(self) -> float: ...
    @property
    def max_error_increase(self) -> float: ...
    @property
    def max_prediction_divergence(self) -> float: ...
    @property
    def divergence_gate(self) -> bool: ...
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
    (compared by Jensen-Shannon distance). ``decisions_compared`` of the arm's rows were
    run through the champion too, and ``decisions_changed`` of them got another decision
    (the canary's arm only). ``losses`` holds one figure per labelled row: 0/1 for a
    wrong decision (``task="classification"``) or the absolute error (``"regression"``).
    """

    request_count: int
    error_count: int
    latency_samples_ms: FloatArray | None = None
    p99_ms: float | None = None
    prediction_sample: FloatArray | None = None
    prediction_histogram: FloatArray | None = None
    decisions_compared: int = 0
    decisions_changed: int = 0
    losses: FloatArray | None = None
    task: str | None = None

    def __post_init__(self) -> None:
        for name in ("request_count", "error_count", "decisions_compared", "decisions_changed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise ValidationError(f"{name} must be a non-negative integer, got {value!r}")
        if self.error_count > self.request_count:
            raise ValidationError(
                f"error_count must not exceed request_count, "
                f"got {self.error_count} errors of {self.request_count}"
            )
        if self.decisions_changed > self.decisions_compared:
            raise ValidationError(
                f"decisions_changed must not exceed decisions_compared, "
                f"got {self.decisions_changed} of {self.decisions_compared}"
            )
        if self.p99_ms is not None and not (math.isfinite(self.p99_ms) and self.p99_ms >= 0):
            raise ValidationError(f"p99_ms must be a non-negative number, got {self.p99_ms!r}")
        if self.task not in (None, "classification", "regression"):
            raise ValidationError(
                f"task must be 'classification' or 'regression', got {self.task!r}"
            )
        for name in ("latency_samples_ms", "prediction_sample", "prediction_histogram", "losses"):
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
    """The outcome of one gate: a sentence, the figure measured (``value``), the
    ``limit`` it is held to, the confidence ``bound`` that decided (None where the
    gate has none), the ``level`` the bound was taken at, and further figures."""

    name: str
    outcome: Outcome
    summary: str
    figures: Mapping[str, Figure] = field(default_factory=dict)
    value: float | None = None
    limit: float | None = None
    bound: float | None = None
    level: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain types, for an event's payload and ``rollout status --json``."""
        return {
            "name": self.name,
            "outcome": self.outcome.value,
            "value": self.value,
            "limit": self.limit,
            "bound": self.bound,
            "level": self.level,
            "summary": self.summary,
            "figures": dict(self.figures),
        }


Check = Callable[[Limits, ArmTraffic, ArmTraffic], CheckResult]


def run_checks(limits: Limits, champion: ArmTraffic, canary: ArmTraffic) -> tuple[CheckResult, ...]:
    """Every gate of ``CHECKS``, in order."""
    return tuple(check(limits, champion, canary) for check in CHECKS)


def spent_level(alpha: float, look: int) -> float:
    """The level of the ``look``-th analysis (1, 2, ...) of one rollout: alpha / (k (k+1)).

    The levels sum to ``alpha`` over any number of looks (a telescoping sum), so a
    good canary fails a given check at some look with probability at most ``alpha``,
    however long the rollout holds; the first look gets alpha / 2. Each look judges
    a window of its own (a window restarts after each judged analysis).
    """
    if look < 1:
        raise ValidationError(f"look must be >= 1, got {look!r}")
    return alpha / (look * (look + 1))


def grade(limits: Limits, p_value: float, material: bool) -> Outcome:
    """Map a one-sided p-value (and whether the effect is big enough to matter) to an outcome."""
    if not material or p_value >= limits.alpha:
        return Outcome.PASSED
    return Outcome.BREACHED if p_value < limits.rollback_alpha else Outcome.FAILED


def _beyond(limits: Limits, soft: float | None, hard: float | None, limit: float) -> Outcome:
    """Breached when even the ``rollback_alpha`` bound is past ``limit``, failed when the
    ``alpha`` bound is; bounds are on the side that favours the canary."""
    if hard is not None and hard > limit:
        return Outcome.BREACHED
    if soft is not None and soft > limit:
        return Outcome.FAILED
    return Outcome.PASSED


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
        return CheckResult(name, Outcome.SKIPPED, "no canary requests")
    n, e = canary.request_count, canary.error_count
    soft, hard = (wilson_lower(e, n, a) for a in (limits.alpha, limits.rollback_alpha))
    outcome = _beyond(limits, soft, hard, limits.max_error_rate)
    summary = (
        f"canary error rate {canary.error_rate:.2%} ({e}/{n}), lower bound {soft:.2%} "
        f"vs max_error_rate {limits.max_error_rate:.2%}"
    )
    return CheckResult(
        name, outcome, summary, {}, canary.error_rate, limits.max_error_rate, soft, limits.alpha
    )


def check_error_rate_vs_champion(
    limits: Limits, champion: ArmTraffic, canary: ArmTraffic
) -> CheckResult:
    name = "error_rate_vs_champion"
    if canary.request_count == 0 or champion.request_count == 0:
        return CheckResult(name, Outcome.SKIPPED, "an arm has no requests")
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
    figures = {"champion": champion.error_rate, "p_value": p}
    return CheckResult(
        name, outcome, summary, figures, canary.error_rate, champion.error_rate, None, limits.alpha
    )


def check_p99(limits: Limits, champion: ArmTraffic, canary: ArmTraffic) -> CheckResult:
    name = "p99"
    ours = p99(canary)
    if ours is None:
        return CheckResult(name, Outcome.SKIPPED, "no canary latency data")
    samples = canary.latency_samples_ms
    limit = limits.max_p99_ms
    if samples is None or samples.size == 0:
        # An exact p99 without samples carries no error bar: over the line fails, never breaches.
        outcome = Outcome.FAILED if ours > limit else Outcome.PASSED
        summary = f"canary p99 {ours:.1f}ms vs max {limit:g}ms"
        return CheckResult(name, outcome, summary, {}, ours, limit)
    ordered = np.sort(samples)
    soft = quantile_lower(ordered, 0.99, limits.alpha)
    hard = quantile_lower(ordered, 0.99, limits.rollback_alpha)
    bound = "n/a" if soft is None else f"{soft:.1f}ms"
    summary = f"canary p99 {ours:.1f}ms (lower bound {bound}) vs max_p99_ms {limit:g}ms"
    return CheckResult(
        name, _beyond(limits, soft, hard, limit), summary, {}, ours, limit, soft, limits.alpha
    )


def _allowed(limits: Limits, champion_ms: FloatArray | float) -> Any:
    """What the canary may take where the champion took ``champion_ms``: more by the
    margin or by the ratio, whichever is larger, since it is slower in a way that matters
    only past both."""
    return np.maximum(
        np.multiply(champion_ms, limits.max_p99_ratio),
        np.add(champion_ms, limits.max_p99_increase_ms),
    )


def check_p99_vs_champion(limits: Limits, champion: ArmTraffic, canary: ArmTraffic) -> CheckResult:
    """Is the canary slower than the champion by more than the tolerance?

    Material: the canary's p99 is past ``_allowed`` of the champion's. Significant: the
    canary's latencies are larger than the champion's *inflated by the tolerance*, by a
    Mann-Whitney test (a shifted body, as Kayenta tests with an effect size) or a Fisher
    exact test on the exceedances of their pooled p99 (a fattened tail), Bonferroni over
    the two. A good canary is stochastically faster than the inflated champion, so both
    tests are conservative for it, at any sample size; the Fisher test's counts are
    hypergeometric given the pooled values, whatever the latency distribution. Both arms
    are read over the same window, so they met the same load; failed and shed requests
    are errors (``error_rate``), never fast answers here.
    """
    name = "p99_vs_champion"
    ours, theirs = p99(canary), p99(champion)
    if ours is None or theirs is None:
        return CheckResult(name, Outcome.SKIPPED, "an arm has no latency data")
    allowed = float(_allowed(limits, theirs))
    figures: dict[str, Figure] = {
        "champion_ms": theirs,
        "ratio": ours / theirs if theirs > 0 else math.inf,
        "increase_ms": ours - theirs,
    }
    rule = f"+{limits.max_p99_increase_ms:g}ms and x{limits.max_p99_ratio:g}"
    summary = (
        f"canary p99 {ours:.1f}ms vs champion {theirs:.1f}ms: allowed {allowed:.1f}ms ({rule})"
    )
    c, b = canary.latency_samples_ms, champion.latency_samples_ms
    if c is None or b is None or min(c.size, b.size) < _MIN_LATENCY_SAMPLES:
        outcome = Outcome.FAILED if ours > allowed else Outcome.PASSED
        return CheckResult(name, outcome, summary, figures, ours, allowed)
    inflated = _allowed(limits, b)
    p_rank = float(stats.mannwhitneyu(c, inflated, alternative="greater").pvalue)
    cut = float(np.quantile(np.concatenate([c, inflated]), 0.99))
    above_c, above_b = int((c > cut).sum()), int((inflated > cut).sum())
    table = [[above_c, c.size - above_c], [above_b, b.size - above_b]]
    p_tail = float(stats.fisher_exact(table, alternative="greater").pvalue)
    p = min(1.0, 2 * min(p_rank, p_tail))
    figures.update({"p_value": p, "mann_whitney_p": p_rank, "tail_p": p_tail})
    bound = quantile_lower(np.sort(c), 0.99, limits.alpha)
    return CheckResult(
        name,
        grade(limits, p, ours > allowed),
        f"{summary}, p={p:.2g}",
        figures,
        ours,
        allowed,
        bound,
        limits.alpha,
    )


def check_decisions(limits: Limits, champion: ArmTraffic, canary: ArmTraffic) -> CheckResult:
    name = "decisions"
    n, changed = canary.decisions_compared, canary.decisions_changed
    if n == 0:
        return CheckResult(name, Outcome.SKIPPED, "no canary decisions compared with the champion")
    soft, hard = (wilson_lower(changed, n, a) for a in (limits.alpha, limits.rollback_alpha))
    share, limit = changed / n, limits.max_decision_change
    summary = (
        f"{share:.1%} of canary decisions differ from the champion's ({changed}/{n}), "
        f"lower bound {soft:.1%} vs max_decision_change {limit:.1%}"
    )
    return CheckResult(
        name, _beyond(limits, soft, hard, limit), summary, {}, share, limit, soft, limits.alpha
    )


def check_live_quality(limits: Limits, champion: ArmTraffic, canary: ArmTraffic) -> CheckResult:
    """Welch's z on the difference of mean losses, shifted by the tolerated margin: the
    canary fails when its loss exceeds the champion's by more than the margin, with
    confidence (a non-inferiority test, as in clinical trials)."""
    name = "live_quality"
    c, b = canary.losses, champion.losses
    if c is None or b is None or min(c.size, b.size) < MIN_LABELLED:
        labelled = (0 if c is None else c.size, 0 if b is None else b.size)
        summary = f"too few labelled rows (canary {labelled[0]}, champion {labelled[1]})"
        return CheckResult(name, Outcome.SKIPPED, summary, {}, None, None, None, None)
    regression = canary.task == "regression"
    loss_c, loss_b = float(c.mean()), float(b.mean())
    margin = limits.max_error_increase * loss_b if regression else limits.max_accuracy_drop
    limit = loss_b + margin
    spread = math.sqrt(c.var(ddof=1) / c.size + b.var(ddof=1) / b.size)
    z = (loss_c - limit) / spread if spread > 0 else (math.inf if loss_c > limit else -math.inf)
    p = float(NormalDist().cdf(-z)) if math.isfinite(z) else (0.0 if z > 0 else 1.0)
    level = NormalDist().inv_cdf(1 - limits.alpha)
    bound = max(0.0, loss_c - level * spread)  # the canary's loss, lower bound
    outcome = grade(limits, p, loss_c > limit)
    what = "mean absolute error" if regression else "error rate"
    summary = (
        f"canary {what} {loss_c:.4g} vs champion {loss_b:.4g} on labelled rows "
        f"({c.size} / {b.size}): allowed {limit:.4g}, one-sided p={p:.2g}"
    )
    figures: dict[str, Figure] = {"champion": loss_b, "p_value": p, "labelled": int(c.size)}
    return CheckResult(name, outcome, summary, figures, loss_c, limit, bound, limits.alpha)


def divergence(champion: ArmTraffic, canary: ArmTraffic) -> tuple[str, float, float] | None:
    """(method, statistic in [0, 1], p-value) comparing the arms' predictions, if both have some."""
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
    """A warning unless ``divergence_gate``: recalibrated scores with the same decisions
    are not harm (the ``decisions`` and ``live_quality`` gates judge harm)."""
    name = "prediction_divergence"
    found = divergence(champion, canary)
    if found is None:
        return CheckResult(name, Outcome.SKIPPED, "no comparable prediction data")
    method, statistic, p = found
    limit = limits.max_prediction_divergence
    outcome = grade(limits, p, statistic > limit)
    if not limits.divergence_gate and outcome is not Outcome.PASSED:
        outcome = Outcome.WARNED
    summary = f"prediction divergence ({method}) {statistic:.3f} vs max {limit:g}, p={p:.2g}"
    figures: dict[str, Figure] = {"method": method, "p_value": p}
    return CheckResult(name, outcome, summary, figures, statistic, limit, None, limits.alpha)


CHECKS: tuple[Check, ...] = (
    check_error_rate,
    check_error_rate_vs_champion,
    check_p99,
    check_p99_vs_champion,
    check_decisions,
    check_live_quality,
    check_divergence,
)
