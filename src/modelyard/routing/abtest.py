"""A/B experiment statistics: per-arm lift against a control, and a stopping rule.

Two designs, the user's choice:

* ``FixedHorizon``: the sample size is fixed up front (``for_conversions`` /
  ``for_means``); a two-sided z-test runs only once every arm has reached it.
  Before that, ``analyze`` refuses to declare anything (the peeking guard):
  checking a fixed-horizon test at every look inflates false positives several-fold.
* ``Sequential``: the mixture sequential probability ratio test (mSPRT) of
  Johari, Pekelis and Walsh, "Always valid inference" (2017), with a normal
  mixture of variance ``tau**2`` over the effect. Its p-values and confidence
  sequences hold at every look, so an experiment may be watched continuously
  and stopped as soon as it declares.

With several treatments, alpha is split over them (Bonferroni). Everything here
is arithmetic on summaries; no scipy on this path so reports stay cheap to recompute.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from statistics import NormalDist

from modelyard.errors import ValidationError

__all__ = [
    "ArmReport",
    "Conversions",
    "ExperimentReport",
    "ExperimentVerdict",
    "FixedHorizon",
    "MeanSummary",
    "Sequential",
    "analyze",
    "sample_size_conversions",
    "sample_size_means",
]

_NORMAL = NormalDist()


def _sf(z: float) -> float:
    """Upper tail of the standard normal."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


@dataclass(frozen=True)
class Conversions:
    """A binary outcome: ``successes`` out of ``trials``."""

    successes: int
    trials: int

    def __post_init__(self) -> None:
        if self.trials < 0 or not 0 <= self.successes <= self.trials:
            raise ValidationError(
                f"successes must be between 0 and trials, got {self.successes}/{self.trials}"
            )

    @property
    def n(self) -> int:
        return self.trials

    @property
    def estimate(self) -> float:
        return self.successes / self.trials if self.trials else 0.0


@dataclass(frozen=True)
class MeanSummary:
    """A continuous outcome as count, mean and sum of squared deviations (Welford's ``m2``)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def __post_init__(self) -> None:
        if self.n < 0 or self.m2 < 0 or not (math.isfinite(self.mean) and math.isfinite(self.m2)):
            raise ValidationError(
                f"a mean summary needs n >= 0, finite mean and m2 >= 0, "
                f"got n={self.n}, mean={self.mean}, m2={self.m2}"
            )

    @classmethod
    def of(cls, values: Iterable[float]) -> MeanSummary:
        """Summarise ``values`` one by one (Welford), without keeping them."""
        summary = cls()
        for value in values:
            summary = summary.add(value)
        return summary

    def add(self, value: float) -> MeanSummary:
        """This summary with one more observation."""
        n = self.n + 1
        delta = value - self.mean
        mean = self.mean + delta / n
        return MeanSummary(n, mean, self.m2 + delta * (value - mean))

    def merge(self, other: MeanSummary) -> MeanSummary:
        """The summary of both samples together (Chan et al.), e.g. across workers."""
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * other.n / n
        return MeanSummary(n, mean, self.m2 + other.m2 + delta * delta * self.n * other.n / n)

    @property
    def estimate(self) -> float:
        return self.mean

    @property
    def variance(self) -> float:
        """Sample variance (n - 1 in the denominator); 0 below two observations."""
        return self.m2 / (self.n - 1) if self.n > 1 else 0.0


Outcomes = Conversions | MeanSummary


def _check_rates(alpha: float, power: float) -> None:
    if not 0 < alpha < 1:
        raise ValidationError(f"alpha must be in (0, 1), got {alpha!r}")
    if not 0 < power < 1:
        raise ValidationError(f"power must be in (0, 1), got {power!r}")


def sample_size_conversions(
    baseline: float, mde: float, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Per-arm sample size of a two-sided two-proportion z-test (as R's ``power.prop.test``).

    ``mde`` is the absolute minimum detectable effect: 0.02 takes 10% to 12%.
    """
    _check_rates(alpha, power)
    if not 0 < baseline < 1:
        raise ValidationError(f"baseline must be a rate in (0, 1), got {baseline!r}")
    target = baseline + mde
    if mde == 0 or not 0 < target < 1:
        raise ValidationError(
            f"mde must be non-zero and keep baseline + mde in (0, 1), got mde={mde!r}"
        )
    pooled = (baseline + target) / 2
    z_alpha, z_power = _NORMAL.inv_cdf(1 - alpha / 2), _NORMAL.inv_cdf(power)
    spread = z_alpha * math.sqrt(2 * pooled * (1 - pooled)) + z_power * math.sqrt(
        baseline * (1 - baseline) + target * (1 - target)
    )
    return math.ceil(spread * spread / (mde * mde))


def sample_size_means(std: float, mde: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Per-arm sample size of a two-sided two-sample z-test on means with common ``std``."""
    _check_rates(alpha, power)
    if not std > 0:
        raise ValidationError(f"std must be positive, got {std!r}")
    if mde == 0 or not math.isfinite(mde):
        raise ValidationError(f"mde must be a non-zero number, got {mde!r}")
    z = _NORMAL.inv_cdf(1 - alpha / 2) + _NORMAL.inv_cdf(power)
    return math.ceil(2 * (std * z / mde) ** 2)


@dataclass(frozen=True)
class FixedHorizon:
    """Decide once, when every arm has ``n_per_arm`` observations."""

    n_per_arm: int
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if self.n_per_arm < 1:
            raise ValidationError(f"n_per_arm must be >= 1, got {self.n_per_arm!r}")
        _check_rates(self.alpha, 0.5)

    @classmethod
    def for_conversions(
        cls,
        baseline: float,
        mde: float,
        alpha: float = 0.05,
        power: float = 0.8,
        treatments: int = 1,
    ) -> FixedHorizon:
        """Size the test for a conversion rate; alpha is split over ``treatments``."""
        return cls(sample_size_conversions(baseline, mde, alpha / treatments, power), alpha)

    @classmethod
    def for_means(
        cls, std: float, mde: float, alpha: float = 0.05, power: float = 0.8, treatments: int = 1
    ) -> FixedHorizon:
        """Size the test for a mean; alpha is split over ``treatments``."""
        return cls(sample_size_means(std, mde, alpha / treatments, power), alpha)


@dataclass(frozen=True)
class Sequential:
    """Always-valid mSPRT. ``tau``: a plausible effect size, in the metric's units.

    ``min_samples_per_arm`` keeps the plug-in variance honest before any declaration;
    ``max_samples_per_arm``, if set, ends the experiment with "none" when reached.
    """

    tau: float
    alpha: float = 0.05
    min_samples_per_arm: int = 100
    max_samples_per_arm: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.tau) and self.tau > 0):
            raise ValidationError(f"tau must be a positive number, got {self.tau!r}")
        _check_rates(self.alpha, 0.5)
        if self.min_samples_per_arm < 1:
            raise ValidationError(
                f"min_samples_per_arm must be >= 1, got {self.min_samples_per_arm!r}"
            )
        if (
            self.max_samples_per_arm is not None
            and self.max_samples_per_arm < self.min_samples_per_arm
        ):
            raise ValidationError(
                f"max_samples_per_arm must be >= min_samples_per_arm "
                f"({self.min_samples_per_arm}), got {self.max_samples_per_arm!r}"
            )


class ExperimentVerdict(StrEnum):
    WINNER = "winner"
    NONE = "none"
    CONTINUE = "continue"


@dataclass(frozen=True)
class ArmReport:
    """One arm: its estimate and, for treatments, the lift over control.

    ``lift`` is the absolute difference (treatment - control), ``ci_low``/``ci_high``
    its confidence interval (a confidence sequence for ``Sequential``), ``p_value``
    two-sided. Statistics are ``None`` for the control and while the design refuses to look.
    """

    name: str
    n: int
    estimate: float
    lift: float | None = None
    relative_lift: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None


@dataclass(frozen=True)
class ExperimentReport:
    """Winner / none / continue, why, and every arm's figures."""

    verdict: ExperimentVerdict
    winner: str | None
    reason: str
    arms: tuple[ArmReport, ...]
    design: str

    def arm(self, name: str) -> ArmReport:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise ValidationError(f"no arm named {name!r} in this report")


def analyze(
    arms: Mapping[str, Outcomes],
    control: str,
    design: FixedHorizon | Sequential,
    *,
    previous: ExperimentReport | None = None,
    higher_is_better: bool = True,
) -> ExperimentReport:
    """Compare every arm with ``control`` under ``design``.

    For ``Sequential``, pass the last report as ``previous`` to keep p-values
    monotone and intervals nested across looks (the running minimum / intersection).
    """
    _validate_arms(arms, control)
    treatments = [name for name in arms if name != control]
    base = arms[control]
    smallest = min(outcome.n for outcome in arms.values())
    kind = "fixed_horizon" if isinstance(design, FixedHorizon) else "sequential"
    alpha = design.alpha / len(treatments)

    if isinstance(design, FixedHorizon):
        ready = smallest >= design.n_per_arm
        wait = (
            f"peeking guard: the fixed-horizon design decides only at {design.n_per_arm} "
            f"per arm; the smallest arm has {smallest}"
        )
    else:
        ready = smallest >= design.min_samples_per_arm
        wait = (
            f"collecting: {smallest} of the {design.min_samples_per_arm} per arm "
            f"needed before a look"
        )

    reports = [ArmReport(control, base.n, base.estimate)]
    significant: list[ArmReport] = []
    for name in treatments:
        report = _compare(name, base, arms[name], design, alpha, ready)
        if isinstance(design, Sequential) and previous is not None and report.p_value is not None:
            report = _carry(report, previous)
        if report.p_value is not None and report.p_value <= alpha:
            significant.append(report)
        reports.append(report)
    arm_reports = tuple(reports)

    if not ready:
        return ExperimentReport(ExperimentVerdict.CONTINUE, None, wait, arm_reports, kind)

    sign = 1.0 if higher_is_better else -1.0
    better = [r for r in significant if sign * (r.lift or 0.0) > 0]
    level = f"{1 - alpha:.3g}"
    label = "always-valid p" if kind == "sequential" else "p"
    if better:
        best = max(better, key=lambda r: sign * (r.lift or 0.0))
        reason = f"{best.name} beats {control}: {_describe(best, level, label)} <= {alpha:.3g}"
        return ExperimentReport(ExperimentVerdict.WINNER, best.name, reason, arm_reports, kind)
    if len(significant) == len(treatments):
        worst = ", ".join(_describe(r, level, label) for r in significant)
        reason = f"{control} beats every treatment: {worst} <= {alpha:.3g}"
        return ExperimentReport(ExperimentVerdict.WINNER, control, reason, arm_reports, kind)

    undecided = f"no treatment differs significantly from {control} at alpha {alpha:.3g}"
    if isinstance(design, Sequential):
        cap = design.max_samples_per_arm
        if cap is None or smallest < cap:
            return ExperimentReport(
                ExperimentVerdict.CONTINUE, None, f"{undecided} yet", arm_reports, kind
            )
        undecided += f" by the maximum of {cap} per arm"
    else:
        undecided += f" at the horizon of {design.n_per_arm} per arm"
    return ExperimentReport(ExperimentVerdict.NONE, None, undecided, arm_reports, kind)


def _validate_arms(arms: Mapping[str, Outcomes], control: str) -> None:
    if control not in arms:
        raise ValidationError(f"control {control!r} is not among the arms {sorted(arms)}")
    if len(arms) < 2:
        raise ValidationError(
            f"an experiment needs a control and at least one treatment, got {sorted(arms)}"
        )
    kinds = {type(outcome) for outcome in arms.values()}
    if len(kinds) != 1 or not kinds <= {Conversions, MeanSummary}:
        names = sorted(k.__name__ for k in kinds)
        raise ValidationError(f"arms must all be Conversions or all MeanSummary, got {names}")


def _variance(outcome: Outcomes, smooth: bool) -> float:
    """Variance of one arm's estimate (its squared standard error)."""
    if isinstance(outcome, MeanSummary):
        return outcome.variance / outcome.n if outcome.n else math.inf
    # Laplace smoothing keeps an arm with no conversions yet from claiming zero variance.
    rate = (outcome.successes + 1) / (outcome.trials + 2) if smooth else outcome.estimate
    return rate * (1 - rate) / outcome.trials if outcome.trials else math.inf


def _compare(
    name: str,
    base: Outcomes,
    arm: Outcomes,
    design: FixedHorizon | Sequential,
    alpha: float,
    ready: bool,
) -> ArmReport:
    lift = arm.estimate - base.estimate
    relative = lift / base.estimate if base.estimate else None
    if not ready:
        return ArmReport(name, arm.n, arm.estimate, lift, relative)
    if isinstance(design, FixedHorizon):
        spread = math.sqrt(_variance(base, False) + _variance(arm, False))
        if isinstance(arm, Conversions) and isinstance(base, Conversions):
            # The test's null variance uses the pooled rate, as the classic two-proportion test.
            pooled = (arm.successes + base.successes) / (arm.trials + base.trials)
            null = math.sqrt(pooled * (1 - pooled) * (1 / arm.trials + 1 / base.trials))
        else:
            null = spread
        p = 1.0 if null == 0 else min(1.0, 2 * _sf(abs(lift) / null))
        half = _NORMAL.inv_cdf(1 - alpha / 2) * spread
        return ArmReport(name, arm.n, arm.estimate, lift, relative, lift - half, lift + half, p)
    v = _variance(base, True) + _variance(arm, True)
    t2 = design.tau * design.tau
    if v == 0:
        return ArmReport(name, arm.n, arm.estimate, lift, relative, lift, lift, 1.0)
    # log of the mixture likelihood ratio against "no difference" (Johari et al.).
    log_ratio = 0.5 * math.log(v / (v + t2)) + lift * lift * t2 / (2 * v * (v + t2))
    p = min(1.0, math.exp(-log_ratio))
    half = math.sqrt(v * (v + t2) / t2 * (2 * math.log(1 / alpha) + math.log((v + t2) / v)))
    return ArmReport(name, arm.n, arm.estimate, lift, relative, lift - half, lift + half, p)


def _carry(report: ArmReport, previous: ExperimentReport) -> ArmReport:
    """Fold in the last look: running-minimum p-value, intersected confidence sequence."""
    before = next((a for a in previous.arms if a.name == report.name), None)
    now = (report.p_value, report.ci_low, report.ci_high)
    then = (None, None, None) if before is None else (before.p_value, before.ci_low, before.ci_high)
    match now, then:
        case (float(p), float(low), float(high)), (float(p0), float(low0), float(high0)):
            # Disjoint sequences happen with probability below alpha; then keep the fresh one.
            if max(low, low0) <= min(high, high0):
                low, high = max(low, low0), min(high, high0)
            return replace(report, ci_low=low, ci_high=high, p_value=min(p, p0))
    return report


def _describe(report: ArmReport, level: str, label: str) -> str:
    return (
        f"{report.name} lift {report.lift:+.4g} ({level} CI {report.ci_low:+.4g} to "
        f"{report.ci_high:+.4g}), {label}={report.p_value:.3g}"
    )
