"""The rollout controller on simulated time: steps, gates, holds, manual operations."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.errors import ConflictError, ValidationError
from modelyard.routing.canary import (
    ArmTraffic,
    Decision,
    Outcome,
    Phase,
    RolloutPolicy,
    RolloutState,
    Verdict,
    abort,
    decide,
    pause,
    promote,
    resume,
    start_rollout,
)

POLICY = RolloutPolicy()
T0 = 1_700_000_000.0


def arm(
    rng: np.random.Generator,
    requests: int,
    error_rate: float,
    median_ms: float = 40.0,
    samples: int = 1_000,
) -> ArmTraffic:
    kept = min(requests, samples)
    return ArmTraffic(
        request_count=requests,
        error_count=int(rng.binomial(requests, error_rate)),
        latency_samples_ms=rng.lognormal(np.log(median_ms), 0.5, kept),
        prediction_sample=rng.beta(2.0, 5.0, kept),
    )


def at_first_analysis(
    champion: ArmTraffic, canary: ArmTraffic, policy: RolloutPolicy = POLICY
) -> Decision:
    state = start_rollout(policy, T0)
    return decide(policy, state, champion, canary, T0 + policy.interval_s)


def number(decision: Decision, key: str) -> float:
    value = decision.figures[key]
    assert isinstance(value, int | float), f"{key} is {value!r}"
    return value


def test_good_canary_is_promoted_through_every_step() -> None:
    rng = np.random.default_rng(1)
    state = start_rollout(POLICY, T0)
    now = T0
    verdicts: list[Verdict] = []
    weights = [state.weight]
    while state.phase is Phase.PROGRESSING:
        now += POLICY.interval_s
        canary_n = 1_000
        champion_n = round(canary_n * (100 - state.weight) / state.weight)
        decision = decide(
            POLICY, state, arm(rng, champion_n, 0.005), arm(rng, canary_n, 0.005), now
        )
        verdicts.append(decision.verdict)
        state = decision.new_state
        weights.append(state.weight)
    assert verdicts == [Verdict.ADVANCE, Verdict.ADVANCE, Verdict.PROMOTE]
    assert weights == [5, 25, 50, 100]
    assert state.phase is Phase.PROMOTED
    assert [e.verdict for e in state.history] == [Verdict.ADVANCE, *verdicts]
    assert "promoting" in state.history[-1].reason


def test_holds_until_the_interval_has_passed() -> None:
    rng = np.random.default_rng(2)
    state = start_rollout(POLICY, T0)
    decision = decide(POLICY, state, arm(rng, 19_000, 0.0), arm(rng, 1_000, 0.0), T0 + 30)
    assert decision.verdict is Verdict.HOLD
    assert decision.new_state == state
    assert "next analysis due in 30s" in decision.reason


def test_canary_with_5pct_errors_vs_0_1pct_champion_is_rolled_back_in_one_interval() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        canary_n = int(rng.integers(300, 3_000))
        decision = at_first_analysis(arm(rng, canary_n * 19, 0.001), arm(rng, canary_n, 0.05))
        assert decision.verdict is Verdict.ROLLBACK
        assert decision.new_state.phase is Phase.ROLLED_BACK
        assert decision.new_state.weight == 0
        assert "error rate" in decision.reason
        assert decision.figures["error_rate_vs_champion.outcome"] == "breached"
        assert number(decision, "error_rate_vs_champion.p_value") < POLICY.rollback_alpha


def test_p99_over_the_absolute_limit_rolls_back() -> None:
    rng = np.random.default_rng(4)
    decision = at_first_analysis(arm(rng, 19_000, 0.001), arm(rng, 1_000, 0.001, median_ms=400))
    assert decision.verdict is Verdict.ROLLBACK
    assert "vs max_p99_ms 500ms" in decision.reason
    assert decision.figures["p99.outcome"] == "breached"


def test_p99_regression_against_the_champion_rolls_back() -> None:
    rng = np.random.default_rng(5)
    decision = at_first_analysis(
        arm(rng, 19_000, 0.001, samples=2_000), arm(rng, 2_000, 0.001, median_ms=80, samples=2_000)
    )
    assert decision.verdict is Verdict.ROLLBACK
    assert number(decision, "p99_vs_champion.ratio") > 1.5
    assert "vs champion" in decision.reason


def test_fattened_tail_alone_is_caught() -> None:
    rng = np.random.default_rng(6)
    champion = arm(rng, 19_000, 0.001, samples=2_000)
    canary = arm(rng, 2_000, 0.001, samples=2_000)
    assert canary.latency_samples_ms is not None
    slow = canary.latency_samples_ms.copy()
    slow[:100] *= 6  # 5% of requests six times slower; the median barely moves
    decision = at_first_analysis(champion, replace(canary, latency_samples_ms=slow))
    assert decision.verdict is Verdict.ROLLBACK
    assert number(decision, "p99_vs_champion.p_value") < 1e-6


def test_exact_p99_without_samples_fails_softly_then_rolls_back() -> None:
    champion = ArmTraffic(19_000, 10, p99_ms=120.0)
    canary = ArmTraffic(1_000, 0, p99_ms=900.0)
    state = start_rollout(POLICY, T0)
    first = decide(POLICY, state, champion, canary, T0 + 60)
    assert first.verdict is Verdict.HOLD
    assert first.new_state.failed_checks == 1
    assert first.new_state.window_started_at == T0 + 60
    assert "failed analysis 1/2" in first.reason
    second = decide(POLICY, first.new_state, champion, canary, T0 + 120)
    assert second.verdict is Verdict.ROLLBACK
    assert second.new_state.failed_checks == 2


def test_holds_while_the_sample_is_too_small_then_advances() -> None:
    rng = np.random.default_rng(7)
    state = start_rollout(POLICY, T0)
    small = decide(POLICY, state, arm(rng, 950, 0.001), arm(rng, 50, 0.001), T0 + 60)
    assert small.verdict is Verdict.HOLD
    assert "sample too small (canary 50/100 requests)" in small.reason
    assert small.new_state == replace(state, analyses=1)  # the window keeps accumulating
    enough = decide(POLICY, state, arm(rng, 2_850, 0.001), arm(rng, 150, 0.001), T0 + 90)
    assert enough.verdict is Verdict.ADVANCE
    assert enough.new_state.weight == 25


def test_clear_breach_rolls_back_even_below_min_requests() -> None:
    rng = np.random.default_rng(8)
    decision = at_first_analysis(arm(rng, 950, 0.001), ArmTraffic(30, 30))
    assert decision.verdict is Verdict.ROLLBACK
    assert "clear breach" in decision.reason


def test_prediction_histograms_are_compared_by_jensen_shannon() -> None:
    same = np.array([100.0, 300.0, 400.0, 200.0])
    shifted = np.array([400.0, 300.0, 200.0, 100.0])
    champion = ArmTraffic(19_000, 19, prediction_histogram=same * 19)
    good = at_first_analysis(champion, ArmTraffic(1_000, 1, prediction_histogram=same))
    assert good.verdict is Verdict.ADVANCE
    assert good.figures["prediction_divergence.method"] == "jensen_shannon"
    shifted_arm = ArmTraffic(1_000, 1, prediction_histogram=shifted)
    warned = at_first_analysis(champion, shifted_arm)
    assert warned.verdict is Verdict.ADVANCE  # a change of scores alone is a warning
    assert warned.figures["prediction_divergence.outcome"] == "warned"
    gated = replace(POLICY, divergence_gate=True)
    bad = at_first_analysis(champion, shifted_arm, gated)
    assert bad.verdict is Verdict.ROLLBACK
    assert "prediction divergence (jensen_shannon)" in bad.reason


def test_missing_data_skips_a_gate() -> None:
    decision = at_first_analysis(ArmTraffic(19_000, 19), ArmTraffic(1_000, 1))
    assert decision.verdict is Verdict.ADVANCE
    assert {c.name: c.outcome for c in decision.checks}["p99"] is Outcome.SKIPPED


def test_single_step_policy_judges_the_canary_alone_and_promotes() -> None:
    policy = RolloutPolicy(step_weights=(100,))
    rng = np.random.default_rng(9)
    decision = at_first_analysis(ArmTraffic(0, 0), arm(rng, 500, 0.001), policy)
    assert decision.verdict is Verdict.PROMOTE
    assert decision.new_state.weight == 100


def test_manual_pause_resume_promote_abort() -> None:
    rng = np.random.default_rng(10)
    state = start_rollout(POLICY, T0)
    paused = pause(state, T0 + 10, "investigating an alert")
    assert paused.new_state.phase is Phase.PAUSED
    assert paused.reason == "paused by operator: investigating an alert"
    held = decide(POLICY, paused.new_state, arm(rng, 19_000, 0.0), arm(rng, 1_000, 0.0), T0 + 600)
    assert held.verdict is Verdict.HOLD
    assert "paused" in held.reason
    resumed = resume(paused.new_state, T0 + 700)
    assert resumed.new_state.phase is Phase.PROGRESSING
    assert resumed.new_state.window_started_at == T0 + 700
    promoted = promote(resumed.new_state, T0 + 710)
    assert promoted.verdict is Verdict.PROMOTE
    assert (promoted.new_state.phase, promoted.new_state.weight) == (Phase.PROMOTED, 100)
    aborted = abort(state, T0 + 5)
    assert aborted.verdict is Verdict.ROLLBACK
    assert (aborted.new_state.phase, aborted.new_state.weight) == (Phase.ABORTED, 0)
    assert [e.reason for e in promoted.new_state.history][-3:] == [
        "paused by operator: investigating an alert",
        "resumed by operator",
        "promoted by operator",
    ]


def test_manual_operations_refuse_states_they_do_not_apply_to() -> None:
    state = start_rollout(POLICY, T0)
    with pytest.raises(ConflictError, match="cannot resume a rollout that is progressing"):
        resume(state, T0)
    paused = pause(state, T0).new_state
    with pytest.raises(ConflictError, match="cannot pause a rollout that is paused"):
        pause(paused, T0)
    done = abort(paused, T0).new_state
    for operation in (pause, resume, promote, abort):
        with pytest.raises(ConflictError, match="that is aborted"):
            operation(done, T0)


def test_terminal_rollouts_are_left_alone() -> None:
    done = promote(start_rollout(POLICY, T0), T0).new_state
    decision = decide(POLICY, done, ArmTraffic(0, 0), ArmTraffic(0, 0), T0 + 600)
    assert decision.verdict is Verdict.HOLD
    assert decision.new_state is done


def test_state_outside_the_policy_is_refused() -> None:
    state = RolloutState(Phase.PROGRESSING, 5, 7, T0, T0)
    with pytest.raises(ValidationError, match="step_index 7 is outside"):
        decide(POLICY, state, ArmTraffic(0, 0), ArmTraffic(0, 0), T0 + 60)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"step_weights": ()}, "step_weights must list at least one weight"),
        ({"step_weights": (5, 50, 25, 100)}, "step_weights must be strictly increasing"),
        ({"step_weights": (5, 25, 50)}, "step_weights must end at 100, got 50"),
        ({"step_weights": (0, 50, 100)}, r"step_weights must each be in \(0, 100\], got 0"),
        ({"step_weights": (50, 150)}, r"step_weights must each be in \(0, 100\], got 150"),
        ({"interval_s": 0}, "interval_s must be a positive number, got 0"),
        ({"min_requests": 0}, "min_requests must be an integer >= 1, got 0"),
        ({"failure_threshold": 1.5}, "failure_threshold must be an integer >= 1"),
        ({"max_error_rate": 5}, r"max_error_rate must be in \(0, 1\], got 5"),
        ({"max_p99_ms": -1}, "max_p99_ms must be a positive number"),
        ({"max_p99_ratio": 0.9}, "max_p99_ratio must be >= 1"),
        ({"max_prediction_divergence": 0}, "max_prediction_divergence must be in"),
        ({"alpha": 0.7}, r"alpha must be in \(0, 0.5\)"),
        ({"rollback_alpha": 0.01}, r"rollback_alpha must be in \(0, alpha=0.001\]"),
    ],
)
def test_bad_policies_are_refused_naming_the_field(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        RolloutPolicy(**changes)  # type: ignore[arg-type]


def test_bad_snapshots_are_refused() -> None:
    with pytest.raises(ValidationError, match="error_count must not exceed request_count"):
        ArmTraffic(10, 11)
    with pytest.raises(ValidationError, match="latency_samples_ms must be a 1-D array"):
        ArmTraffic(10, 0, latency_samples_ms=np.array([1.0, np.nan]))


@settings(max_examples=40, deadline=None)
@given(
    requests=st.integers(min_value=100, max_value=50_000),
    errors_per_mille=st.integers(min_value=0, max_value=5),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_a_canary_identical_to_its_champion_is_never_rolled_back(
    requests: int, errors_per_mille: int, seed: int
) -> None:
    twin = arm(np.random.default_rng(seed), requests, 0.0, samples=300)
    twin = replace(twin, error_count=requests * errors_per_mille // 1_000)
    decision = at_first_analysis(twin, twin)
    assert decision.verdict is Verdict.ADVANCE
    json.dumps(decision.figures, allow_nan=False)  # an event row can store them as they are
