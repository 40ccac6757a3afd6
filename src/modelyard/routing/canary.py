"""The rollout controller: a pure state machine that walks a canary through traffic steps.

Each call to ``decide`` gets the policy, the current state, one
``MetricsSnapshot`` per arm and the time, and returns a ``Decision``: promote,
advance, hold or rollback, with a reason and the figures it used (one event
row). Nothing here reads a clock, a database or the metrics backend; the
adapter around it does, querying each arm's traffic over
``[state.window_started_at, now)``.

Every check judges the canary against noise, not against a raw line:

* ``passed``: no significant evidence of harm (or the effect is too small to matter);
* ``failed``: significant at ``alpha``; ``failure_threshold`` failed analyses roll back;
* ``breached``: significant even at ``rollback_alpha``; rolls back at once, whatever
  ``failure_threshold`` says and even before ``min_requests`` is reached, so a clearly bad
  canary never outlives one analysis interval;
* ``skipped``: the data for it is missing (no latency samples, no champion traffic).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from numbers import Real
from statistics import NormalDist

import numpy as np
import numpy.typing as npt
from scipy import stats
from scipy.spatial.distance import jensenshannon

from modelyard.errors import ConflictError, ValidationError

__all__ = [
    "CheckResult",
    "Decision",
    "MetricsSnapshot",
    "Outcome",
    "Phase",
    "RolloutEvent",
    "RolloutPolicy",
    "RolloutState",
    "Verdict",
    "abort",
    "decide",
    "pause",
    "promote",
    "resume",
    "start_rollout",
]

Figure = float | int | str | None
FloatArray = npt.NDArray[np.float64]

# Below this many latency samples per arm the rank and tail tests say little.
_MIN_LATENCY_SAMPLES = 20
_FULL = 100.0


class Phase(StrEnum):
    PROGRESSING = "progressing"
    PAUSED = "paused"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"


class Verdict(StrEnum):
    PROMOTE = "promote"
    ADVANCE = "advance"
    HOLD = "hold"
    ROLLBACK = "rollback"


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    BREACHED = "breached"
    SKIPPED = "skipped"


_TERMINAL = frozenset({Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED})


@dataclass(frozen=True)
class RolloutPolicy:
    """How a canary is stepped up and judged; names follow Flagger (see docs/rollouts.md).

    ``step_weights``: canary traffic percentages, increasing, ending at 100 (reaching 100
    is promotion). ``interval_s``: one analysis per interval. ``min_requests``: per arm,
    before an analysis may pass or fail. ``failure_threshold``: failed analyses before
    rollback. ``max_error_rate`` (fraction), ``max_p99_ms``: absolute limits.
    ``max_p99_ratio``: canary/champion p99 that counts as a regression.
    ``max_prediction_divergence``: KS statistic or Jensen-Shannon distance, in [0, 1].
    ``alpha`` / ``rollback_alpha``: significance for a failed / a breached check.
    """

    step_weights: tuple[float, ...] = (5, 25, 50, 100)
    interval_s: float = 60.0
    min_requests: int = 100
    failure_threshold: int = 2
    max_error_rate: float = 0.01
    max_p99_ms: float = 500.0
    max_p99_ratio: float = 1.2
    max_prediction_divergence: float = 0.1
    alpha: float = 1e-3
    rollback_alpha: float = 1e-5

    def __post_init__(self) -> None:
        steps = tuple(self.step_weights)
        if not steps:
            raise ValidationError("step_weights must list at least one weight, got none")
        for w in steps:
            if isinstance(w, bool) or not isinstance(w, Real) or not 0 < w <= _FULL:
                raise ValidationError(f"step_weights must each be in (0, 100], got {w!r}")
        if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
            raise ValidationError(f"step_weights must be strictly increasing, got {steps}")
        if steps[-1] != _FULL:
            raise ValidationError(f"step_weights must end at 100, got {steps[-1]!r}")
        object.__setattr__(self, "step_weights", tuple(float(w) for w in steps))
        _positive("interval_s", self.interval_s)
        _positive("max_p99_ms", self.max_p99_ms)
        for name in ("min_requests", "failure_threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("max_error_rate", "max_prediction_divergence"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ValidationError(f"{name} must be in (0, 1], got {value!r}")
        if not self.max_p99_ratio >= 1:
            raise ValidationError(f"max_p99_ratio must be >= 1, got {self.max_p99_ratio!r}")
        if not 0 < self.alpha < 0.5:
            raise ValidationError(f"alpha must be in (0, 0.5), got {self.alpha!r}")
        if not 0 < self.rollback_alpha <= self.alpha:
            raise ValidationError(
                f"rollback_alpha must be in (0, alpha={self.alpha}], got {self.rollback_alpha!r}"
            )


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, Real) and math.isfinite(value) and value > 0):
        raise ValidationError(f"{name} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class RolloutEvent:
    """One state change, kept in ``RolloutState.history``."""

    at: float
    verdict: Verdict
    phase: Phase
    weight: float
    reason: str


@dataclass(frozen=True)
class RolloutState:
    """Where a rollout stands. Times are seconds on the caller's clock."""

    phase: Phase
    weight: float
    step_index: int
    step_started_at: float
    window_started_at: float
    failed_checks: int = 0
    history: tuple[RolloutEvent, ...] = ()


@dataclass(frozen=True, eq=False)
class MetricsSnapshot:
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


@dataclass(frozen=True)
class Decision:
    """What ``decide`` (or a manual operation) concluded: enough for an event row."""

    verdict: Verdict
    new_state: RolloutState
    reason: str
    figures: dict[str, Figure]
    checks: tuple[CheckResult, ...] = ()


def start_rollout(policy: RolloutPolicy, now: float) -> RolloutState:
    """The state of a rollout that begins at ``now`` on its first step."""
    weight = policy.step_weights[0]
    event = RolloutEvent(now, Verdict.ADVANCE, Phase.PROGRESSING, weight, f"started at {weight:g}%")
    return RolloutState(Phase.PROGRESSING, weight, 0, now, now, 0, (event,))


def decide(
    policy: RolloutPolicy,
    state: RolloutState,
    champion: MetricsSnapshot,
    canary: MetricsSnapshot,
    now: float,
) -> Decision:
    """Judge the current analysis window and say what the rollout does next."""
    figures: dict[str, Figure] = {
        "phase": state.phase.value,
        "weight": state.weight,
        "step_index": state.step_index,
        "failed_checks": state.failed_checks,
    }
    if state.phase in _TERMINAL:
        return Decision(
            Verdict.HOLD, state, f"rollout already {state.phase}; nothing to do", figures
        )
    if state.phase is Phase.PAUSED:
        return Decision(Verdict.HOLD, state, "rollout is paused; resume to continue", figures)
    if not 0 <= state.step_index < len(policy.step_weights):
        raise ValidationError(
            f"step_index {state.step_index} is outside the policy's "
            f"{len(policy.step_weights)} step_weights"
        )
    due = state.window_started_at + policy.interval_s
    if now < due:
        return Decision(Verdict.HOLD, state, f"next analysis due in {due - now:.0f}s", figures)

    checks = tuple(check(policy, champion, canary) for check in _CHECKS)
    figures.update(
        {
            "canary.requests": canary.request_count,
            "canary.errors": canary.error_count,
            "champion.requests": champion.request_count,
            "champion.errors": champion.error_count,
        }
    )
    for check in checks:
        figures[f"{check.name}.outcome"] = check.outcome.value
        figures.update({f"{check.name}.{k}": v for k, v in check.figures.items()})

    breached = [c for c in checks if c.outcome is Outcome.BREACHED]
    if breached:
        return _roll_back(state, now, "clear breach: " + _summaries(breached), figures, checks)

    # At 100% the champion serves nothing, so only the canary's sample can be short.
    short = [("canary", canary.request_count)]
    if state.weight < _FULL:
        short.append(("champion", champion.request_count))
    short = [(arm, n) for arm, n in short if n < policy.min_requests]
    if short:
        counts = ", ".join(f"{arm} {n}/{policy.min_requests}" for arm, n in short)
        reason = f"holding at {state.weight:g}%: sample too small ({counts} requests)"
        return Decision(Verdict.HOLD, state, reason, figures, checks)

    failed = [c for c in checks if c.outcome is Outcome.FAILED]
    if failed:
        count = state.failed_checks + 1
        figures["failed_checks"] = count
        detail = f"{_summaries(failed)} (failed analysis {count}/{policy.failure_threshold})"
        if count >= policy.failure_threshold:
            return _roll_back(replace(state, failed_checks=count), now, detail, figures, checks)
        reason = f"holding at {state.weight:g}%: {detail}"
        held = replace(state, failed_checks=count, window_started_at=now)
        return _record(Verdict.HOLD, held, now, reason, figures, checks)

    passed = f"analysis passed at {state.weight:g}% ({canary.request_count} canary requests)"
    following = state.step_index + 1
    if following >= len(policy.step_weights) or policy.step_weights[following] >= _FULL:
        last = len(policy.step_weights) - 1
        done = replace(state, phase=Phase.PROMOTED, weight=_FULL, step_index=last)
        done = replace(done, step_started_at=now, window_started_at=now)
        return _record(Verdict.PROMOTE, done, now, f"{passed}; promoting", figures, checks)
    weight = policy.step_weights[following]
    moved = replace(
        state, weight=weight, step_index=following, step_started_at=now, window_started_at=now
    )
    return _record(
        Verdict.ADVANCE, moved, now, f"{passed}; advancing to {weight:g}%", figures, checks
    )


def pause(state: RolloutState, now: float, note: str | None = None) -> Decision:
    """Freeze the rollout at its current weight until ``resume``."""
    _require(state, "pause", {Phase.PROGRESSING})
    paused = replace(state, phase=Phase.PAUSED)
    return _record(Verdict.HOLD, paused, now, _manual("paused", note), _brief(state))


def resume(state: RolloutState, now: float, note: str | None = None) -> Decision:
    """Continue a paused rollout; its analysis window starts afresh at ``now``."""
    _require(state, "resume", {Phase.PAUSED})
    going = replace(state, phase=Phase.PROGRESSING, window_started_at=now)
    return _record(Verdict.HOLD, going, now, _manual("resumed", note), _brief(state))


def promote(state: RolloutState, now: float, note: str | None = None) -> Decision:
    """Skip the remaining steps: the canary takes 100% of traffic."""
    _require(state, "promote", {Phase.PROGRESSING, Phase.PAUSED})
    done = replace(state, phase=Phase.PROMOTED, weight=_FULL, step_started_at=now)
    return _record(Verdict.PROMOTE, done, now, _manual("promoted", note), _brief(state))


def abort(state: RolloutState, now: float, note: str | None = None) -> Decision:
    """Stop the rollout and send all traffic back to the champion."""
    _require(state, "abort", {Phase.PROGRESSING, Phase.PAUSED})
    gone = replace(state, phase=Phase.ABORTED, weight=0.0, step_started_at=now)
    return _record(Verdict.ROLLBACK, gone, now, _manual("aborted", note), _brief(state))


def _require(state: RolloutState, action: str, allowed: set[Phase]) -> None:
    if state.phase not in allowed:
        wanted = " or ".join(sorted(p.value for p in allowed))
        raise ConflictError(f"cannot {action} a rollout that is {state.phase}; it must be {wanted}")


def _manual(action: str, note: str | None) -> str:
    return f"{action} by operator" + (f": {note}" if note else "")


def _brief(state: RolloutState) -> dict[str, Figure]:
    return {"phase": state.phase.value, "weight": state.weight, "step_index": state.step_index}


def _roll_back(
    state: RolloutState,
    now: float,
    detail: str,
    figures: dict[str, Figure],
    checks: tuple[CheckResult, ...],
) -> Decision:
    gone = replace(
        state, phase=Phase.ROLLED_BACK, weight=0.0, step_started_at=now, window_started_at=now
    )
    reason = f"rolling back from {state.weight:g}%: {detail}"
    return _record(Verdict.ROLLBACK, gone, now, reason, figures, checks)


def _record(
    verdict: Verdict,
    state: RolloutState,
    now: float,
    reason: str,
    figures: dict[str, Figure],
    checks: tuple[CheckResult, ...] = (),
) -> Decision:
    figures["phase"] = state.phase.value
    figures["new_weight"] = state.weight
    event = RolloutEvent(now, verdict, state.phase, state.weight, reason)
    return Decision(
        verdict, replace(state, history=(*state.history, event)), reason, figures, checks
    )


def _summaries(checks: list[CheckResult]) -> str:
    return "; ".join(c.summary for c in checks)


# --- the gates -----------------------------------------------------------------------------


def _grade(policy: RolloutPolicy, p_value: float, material: bool) -> Outcome:
    """Map a one-sided p-value (and whether the effect is big enough to matter) to an outcome."""
    if not material or p_value >= policy.alpha:
        return Outcome.PASSED
    return Outcome.BREACHED if p_value < policy.rollback_alpha else Outcome.FAILED


def _wilson_lower(errors: int, n: int, alpha: float) -> float:
    """One-sided Wilson lower bound of a proportion at confidence 1 - alpha."""
    z = NormalDist().inv_cdf(1 - alpha)
    p = errors / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - spread) / (1 + z * z / n))


def _quantile_lower(sorted_sample: FloatArray, q: float, alpha: float) -> float | None:
    """Distribution-free lower bound of the q-quantile at confidence 1 - alpha.

    The k-th order statistic lies below the true quantile with probability
    P(Binomial(n, q) >= k); k = binom.ppf(alpha, n, q) keeps that above 1 - alpha.
    """
    k = int(stats.binom.ppf(alpha, len(sorted_sample), q))
    return float(sorted_sample[k - 1]) if k >= 1 else None


def _p99(snapshot: MetricsSnapshot) -> float | None:
    if snapshot.p99_ms is not None:
        return snapshot.p99_ms
    samples = snapshot.latency_samples_ms
    return float(np.quantile(samples, 0.99)) if samples is not None and samples.size else None


def _check_error_rate(
    policy: RolloutPolicy, champion: MetricsSnapshot, canary: MetricsSnapshot
) -> CheckResult:
    name = "error_rate"
    if canary.request_count == 0:
        return CheckResult(name, Outcome.SKIPPED, "no canary requests", {})
    n, e = canary.request_count, canary.error_count
    soft, hard = (_wilson_lower(e, n, a) for a in (policy.alpha, policy.rollback_alpha))
    outcome = Outcome.PASSED
    if hard > policy.max_error_rate:
        outcome = Outcome.BREACHED
    elif soft > policy.max_error_rate:
        outcome = Outcome.FAILED
    summary = (
        f"canary error rate {canary.error_rate:.2%} ({e}/{n}), lower bound {soft:.2%} "
        f"vs max_error_rate {policy.max_error_rate:.2%}"
    )
    figures = {"canary": canary.error_rate, "lower_bound": soft, "limit": policy.max_error_rate}
    return CheckResult(name, outcome, summary, figures)


def _check_error_rate_vs_champion(
    policy: RolloutPolicy, champion: MetricsSnapshot, canary: MetricsSnapshot
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
    outcome = _grade(policy, p, canary.error_rate > champion.error_rate)
    summary = (
        f"canary error rate {canary.error_rate:.2%} ({canary.error_count}/{canary.request_count}) "
        f"vs champion {champion.error_rate:.2%} "
        f"({champion.error_count}/{champion.request_count}), Fisher one-sided p={p:.2g}"
    )
    figures = {"canary": canary.error_rate, "champion": champion.error_rate, "p_value": p}
    return CheckResult(name, outcome, summary, figures)


def _check_p99(
    policy: RolloutPolicy, champion: MetricsSnapshot, canary: MetricsSnapshot
) -> CheckResult:
    name = "p99"
    p99 = _p99(canary)
    if p99 is None:
        return CheckResult(name, Outcome.SKIPPED, "no canary latency data", {})
    samples = canary.latency_samples_ms
    figures: dict[str, Figure] = {"canary_ms": p99, "limit_ms": policy.max_p99_ms}
    if samples is None or samples.size == 0:
        # An exact p99 without samples carries no error bar: over the line fails, never breaches.
        outcome = Outcome.FAILED if p99 > policy.max_p99_ms else Outcome.PASSED
        return CheckResult(
            name, outcome, f"canary p99 {p99:.0f}ms vs max {policy.max_p99_ms:.0f}ms", figures
        )
    ordered = np.sort(samples)
    soft = _quantile_lower(ordered, 0.99, policy.alpha)
    hard = _quantile_lower(ordered, 0.99, policy.rollback_alpha)
    outcome = Outcome.PASSED
    if hard is not None and hard > policy.max_p99_ms:
        outcome = Outcome.BREACHED
    elif soft is not None and soft > policy.max_p99_ms:
        outcome = Outcome.FAILED
    figures["lower_bound_ms"] = soft
    bound = "n/a" if soft is None else f"{soft:.0f}ms"
    summary = (
        f"canary p99 {p99:.0f}ms (lower bound {bound}) vs max_p99_ms {policy.max_p99_ms:.0f}ms"
    )
    return CheckResult(name, outcome, summary, figures)


def _check_p99_vs_champion(
    policy: RolloutPolicy, champion: MetricsSnapshot, canary: MetricsSnapshot
) -> CheckResult:
    name = "p99_vs_champion"
    ours, theirs = _p99(canary), _p99(champion)
    if ours is None or theirs is None:
        return CheckResult(name, Outcome.SKIPPED, "an arm has no latency data", {})
    ratio = ours / theirs if theirs > 0 else math.inf
    figures: dict[str, Figure] = {"canary_ms": ours, "champion_ms": theirs, "ratio": ratio}
    material = ratio > policy.max_p99_ratio
    summary = (
        f"canary p99 {ours:.0f}ms vs champion {theirs:.0f}ms "
        f"(x{ratio:.2f}, max x{policy.max_p99_ratio:g})"
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
    return CheckResult(name, _grade(policy, p, material), f"{summary}, p={p:.2g}", figures)


def _divergence(
    champion: MetricsSnapshot, canary: MetricsSnapshot
) -> tuple[str, float, float] | None:
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


def _check_divergence(
    policy: RolloutPolicy, champion: MetricsSnapshot, canary: MetricsSnapshot
) -> CheckResult:
    name = "prediction_divergence"
    found = _divergence(champion, canary)
    if found is None:
        return CheckResult(name, Outcome.SKIPPED, "no comparable prediction data", {})
    method, statistic, p = found
    outcome = _grade(policy, p, statistic > policy.max_prediction_divergence)
    summary = (
        f"prediction divergence ({method}) {statistic:.3f} vs max "
        f"{policy.max_prediction_divergence:g}, p={p:.2g}"
    )
    figures: dict[str, Figure] = {"method": method, "statistic": statistic, "p_value": p}
    return CheckResult(name, outcome, summary, figures)


_CHECKS: tuple[Callable[[RolloutPolicy, MetricsSnapshot, MetricsSnapshot], CheckResult], ...] = (
    _check_error_rate,
    _check_error_rate_vs_champion,
    _check_p99,
    _check_p99_vs_champion,
    _check_divergence,
)
