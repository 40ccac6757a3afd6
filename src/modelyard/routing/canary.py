"""The rollout state machine: pure decisions that walk a canary through traffic steps.

Each call to ``decide`` gets the policy, the current state, one
``ArmTraffic`` per arm and the time, and returns a ``Decision``: promote,
advance, hold or rollback, with a reason and the figures it used (one event
row). Nothing here reads a clock, a database or the metrics backend; the
adapter around it does, querying each arm's traffic over
``[state.window_started_at, now)``.

The gates live in ``analysis``; this module turns their outcomes into verdicts:

* a ``failed`` check counts one failed analysis; ``failure_threshold`` of them roll back;
* a ``breached`` check rolls back at once, whatever ``failure_threshold`` says and even
  before ``min_requests`` is reached, so a clearly bad canary never outlives one
  analysis interval;
* ``passed``, ``warned`` and ``skipped`` checks let the rollout advance.

Sequential validity: a rollout looks at its canary once per interval, possibly many
times. The k-th look tests at ``spent_level(alpha, k)`` = alpha / (k (k+1)) (and the
same for ``rollback_alpha``), so that over every look of a rollout a check fails a good
canary with probability at most ``alpha``: a Bonferroni spending of alpha across
looks, the simplest always-valid choice, at the price of some power in late looks.

``to_dict``/``from_dict`` on the policy and the state give the JSON the
deployment store keeps between analyses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from enum import StrEnum
from numbers import Real
from typing import Any

from modelyard.errors import ConflictError, ValidationError
from modelyard.routing.analysis import (
    ArmTraffic,
    CheckResult,
    Figure,
    Outcome,
    run_checks,
    spent_level,
)

__all__ = [
    "CheckResult",
    "Decision",
    "ArmTraffic",
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


_TERMINAL = frozenset({Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED})


@dataclass(frozen=True)
class RolloutPolicy:
    """How a canary is stepped up and judged; names follow Flagger (see docs/rollouts.md).

    ``step_weights``: canary traffic percentages, increasing, ending at 100 (reaching 100
    is promotion). ``interval_s``: one analysis per interval. ``min_requests``: per arm,
    before an analysis may pass or fail. ``failure_threshold``: failed analyses before
    rollback. ``max_error_rate`` (fraction), ``max_p99_ms``: absolute limits.
    ``max_p99_ratio`` and ``max_p99_increase_ms``: the canary's p99 counts as a
    regression only past both, the ratio and the absolute margin over the champion's.
    ``max_decision_change``: share of requests on which the canary decides differently
    from the champion. ``max_accuracy_drop`` (classifiers: points of accuracy) and
    ``max_error_increase`` (regressors: relative mean absolute error): how much worse
    than the champion on labelled requests. ``max_prediction_divergence``: KS statistic
    or Jensen-Shannon distance of scores, in [0, 1]; a warning unless
    ``divergence_gate``. ``alpha`` / ``rollback_alpha``: significance of a failed / a
    breached check over the whole rollout (spent across its analyses).
    """

    step_weights: tuple[float, ...] = (5, 25, 50, 100)
    interval_s: float = 60.0
    min_requests: int = 100
    failure_threshold: int = 2
    max_error_rate: float = 0.01
    max_p99_ms: float = 500.0
    max_p99_ratio: float = 1.2
    max_p99_increase_ms: float = 5.0
    max_decision_change: float = 0.05
    max_accuracy_drop: float = 0.02
    max_error_increase: float = 0.1
    max_prediction_divergence: float = 0.1
    divergence_gate: bool = False
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
        for name in ("max_p99_increase_ms", "max_accuracy_drop", "max_error_increase"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise ValidationError(f"{name} must be a number >= 0, got {value!r}")
            if not math.isfinite(value):
                raise ValidationError(f"{name} must be finite, got {value!r}")
        if not isinstance(self.divergence_gate, bool):
            raise ValidationError(
                f"divergence_gate must be true or false, got {self.divergence_gate!r}"
            )
        for name in ("min_requests", "failure_threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("max_error_rate", "max_decision_change", "max_prediction_divergence"):
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

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["step_weights"] = list(self.step_weights)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RolloutPolicy:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValidationError(
                f"unknown rollout policy field(s) {unknown}; allowed: {sorted(known)}"
            )
        values = dict(data)
        if "step_weights" in values:
            values["step_weights"] = tuple(values["step_weights"])
        return cls(**values)


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
    analyses: int = 0  # looks at the canary so far: the k of alpha's spending

    @property
    def active(self) -> bool:
        """Whether the rollout still runs (progressing or paused)."""
        return self.phase not in _TERMINAL

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["history"] = [
            {**asdict(e), "verdict": e.verdict.value, "phase": e.phase.value} for e in self.history
        ]
        data["phase"] = self.phase.value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RolloutState:
        history = tuple(
            RolloutEvent(
                float(e["at"]),
                Verdict(e["verdict"]),
                Phase(e["phase"]),
                float(e["weight"]),
                str(e["reason"]),
            )
            for e in data.get("history", ())
        )
        return cls(
            phase=Phase(data["phase"]),
            weight=float(data["weight"]),
            step_index=int(data["step_index"]),
            step_started_at=float(data["step_started_at"]),
            window_started_at=float(data["window_started_at"]),
            failed_checks=int(data.get("failed_checks", 0)),
            history=history,
            analyses=int(data.get("analyses", 0)),
        )


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
    champion: ArmTraffic,
    canary: ArmTraffic,
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

    look = state.analyses + 1
    state = replace(state, analyses=look)
    levels = replace(
        policy,
        alpha=spent_level(policy.alpha, look),
        rollback_alpha=spent_level(policy.rollback_alpha, look),
    )
    checks = run_checks(levels, champion, canary)
    figures["analysis"] = look
    figures["alpha"] = levels.alpha
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
