"""The judgement of issue 16 on simulated windows: harm fails a canary, noise does not.

Each scenario walks whole rollouts through ``decide`` on simulated time: a good canary
must never be rolled back, a harmful one must be within one or two analyses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest

from modelyard.errors import ValidationError
from modelyard.routing.analysis import ArmTraffic, Outcome, check_p99_vs_champion, spent_level
from modelyard.routing.canary import Phase, RolloutPolicy, Verdict, decide, start_rollout

POLICY = RolloutPolicy(interval_s=10)
T0 = 1_700_000_000.0
Arm = Callable[[np.random.Generator, int], ArmTraffic]


def saturated(
    rng: np.random.Generator,
    n: int,
    *,
    errors: float = 0.001,
    slow: float = 1.0,
    changed: float | None = None,
    wrong: float | None = None,
    scores: tuple[float, float] = (2.0, 5.0),
) -> ArmTraffic:
    """An arm of a saturated server: ~2 ms answers with a long queueing tail, a few
    hundred to thousands of requests a window."""
    latency = (1.0 + rng.gamma(1.5, 0.4, n) + rng.exponential(0.2, n) ** 2) * slow
    labelled = n // 4  # feedback for a quarter of the requests, as it trickles in
    return ArmTraffic(
        request_count=n,
        error_count=int(rng.binomial(n, errors)),
        latency_samples_ms=latency,
        prediction_sample=rng.beta(*scores, n),
        decisions_compared=0 if changed is None else n,
        decisions_changed=0 if changed is None else int(rng.binomial(n, changed)),
        losses=None if wrong is None else rng.binomial(1, wrong, labelled).astype(np.float64),
        task=None if wrong is None else "classification",
    )


def roll(
    rng: np.random.Generator,
    champion: Arm,
    canary: Arm,
    *,
    policy: RolloutPolicy = POLICY,
    per_second: int = 400,
) -> tuple[Phase, int]:
    """One rollout to its end: (final phase, analyses it took)."""
    state = start_rollout(policy, T0)
    now, analyses = T0, 0
    while state.active and analyses < 20:
        now += policy.interval_s
        n = round(per_second * policy.interval_s)
        canary_n = max(1, round(n * state.weight / 100))
        decision = decide(policy, state, champion(rng, n - canary_n), canary(rng, canary_n), now)
        state, analyses = decision.new_state, analyses + 1
    return state.phase, analyses


def good(rng: np.random.Generator, n: int) -> ArmTraffic:
    return saturated(rng, n, changed=0.02, wrong=0.10)


@pytest.mark.parametrize("per_second", [300, 2_000])
def test_a_good_canary_is_never_rolled_back(per_second: int) -> None:
    rng = np.random.default_rng(per_second)
    outcomes = [roll(rng, good, good, per_second=per_second)[0] for _ in range(12)]
    assert outcomes == [Phase.PROMOTED] * 12


def test_the_saturated_p99_noise_of_issue_16_is_not_harm() -> None:
    # "canary p99 2ms vs champion 2ms (x1.27), p=1.4e-21": thousands of samples make a
    # sub-millisecond difference significant; the 5 ms margin says it does not matter.
    rng = np.random.default_rng(16)
    champion = saturated(rng, 20_000)
    canary = saturated(rng, 20_000, slow=1.27)
    result = check_p99_vs_champion(POLICY, champion, canary)
    assert result.outcome is Outcome.PASSED
    assert result.figures["ratio"] == pytest.approx(1.27, abs=0.1)
    assert result.limit is not None
    assert result.value is not None
    assert result.value < result.limit


@pytest.mark.parametrize(
    ("canary", "cause"),
    [
        (lambda rng, n: saturated(rng, n, errors=0.05, changed=0.02), "error rate"),
        (lambda rng, n: saturated(rng, n, slow=4.0, changed=0.02), "vs champion"),
        (lambda rng, n: saturated(rng, n, changed=0.5, wrong=0.5), "decisions differ"),
        (lambda rng, n: saturated(rng, n, changed=0.10), "decisions differ"),
    ],
    ids=["5% errors", "slower past the margin", "shuffled labels", "10% decisions differ"],
)
def test_a_harmful_canary_is_rolled_back_within_two_analyses(canary: Arm, cause: str) -> None:
    rng = np.random.default_rng(3)
    for _ in range(10):
        phase, analyses = roll(rng, good, canary, per_second=1_000)
        assert phase is Phase.ROLLED_BACK
        assert analyses <= 2


def test_recalibrated_scores_with_the_same_decisions_are_promoted_with_a_warning() -> None:
    rng = np.random.default_rng(4)
    champion = saturated(rng, 9_500, changed=0.02)
    canary = saturated(rng, 500, changed=0.01, scores=(5.0, 2.0))
    decision = decide(POLICY, start_rollout(POLICY, T0), champion, canary, T0 + 10)
    assert decision.verdict is Verdict.ADVANCE
    outcomes = {c.name: c.outcome for c in decision.checks}
    assert outcomes["prediction_divergence"] is Outcome.WARNED
    assert outcomes["decisions"] is Outcome.PASSED


def test_live_accuracy_worse_past_the_margin_fails_and_within_it_passes() -> None:
    rng = np.random.default_rng(5)

    def labelled(wrong: float) -> ArmTraffic:
        return saturated(rng, 4_000, wrong=wrong)

    state = start_rollout(POLICY, T0)
    worse = decide(POLICY, state, labelled(0.10), labelled(0.20), T0 + 10)
    assert {c.name: c.outcome for c in worse.checks}["live_quality"] is Outcome.BREACHED
    assert worse.verdict is Verdict.ROLLBACK
    close = decide(POLICY, state, labelled(0.10), labelled(0.11), T0 + 10)
    assert {c.name: c.outcome for c in close.checks}["live_quality"] is Outcome.PASSED


def test_regression_error_is_judged_relative_to_the_champion() -> None:
    rng = np.random.default_rng(6)

    def errors(scale: float) -> ArmTraffic:
        return ArmTraffic(3_000, 0, losses=np.abs(rng.normal(0, scale, 3_000)), task="regression")

    state = start_rollout(POLICY, T0)
    worse = decide(POLICY, state, errors(1.0), errors(1.4), T0 + 10)
    result = {c.name: c for c in worse.checks}["live_quality"]
    assert result.outcome is Outcome.BREACHED
    assert "mean absolute error" in result.summary
    same = decide(POLICY, state, errors(1.0), errors(1.0), T0 + 10)
    assert {c.name: c.outcome for c in same.checks}["live_quality"] is Outcome.PASSED


def test_too_few_labels_skip_the_quality_check() -> None:
    rng = np.random.default_rng(7)
    champion, canary = saturated(rng, 100, wrong=0.1), saturated(rng, 100, wrong=0.9)
    decision = decide(POLICY, start_rollout(POLICY, T0), champion, canary, T0 + 10)
    result = {c.name: c for c in decision.checks}["live_quality"]
    assert result.outcome is Outcome.SKIPPED
    assert "too few labelled rows (canary 25, champion 25)" in result.summary


def test_alpha_is_spent_across_looks() -> None:
    assert sum(spent_level(1e-3, k) for k in range(1, 10_000)) == pytest.approx(1e-3, rel=1e-3)
    rng = np.random.default_rng(8)
    state = start_rollout(POLICY, T0)
    first = decide(POLICY, state, good(rng, 9_500), good(rng, 500), T0 + 10)
    assert first.figures["analysis"] == 1
    assert first.figures["alpha"] == pytest.approx(POLICY.alpha / 2)
    second = decide(POLICY, first.new_state, good(rng, 7_500), good(rng, 2_500), T0 + 20)
    assert second.figures["analysis"] == 2
    assert second.figures["alpha"] == pytest.approx(POLICY.alpha / 6)
    assert all(c.level == second.figures["alpha"] for c in second.checks if c.level is not None)


def test_every_check_reports_value_limit_and_bound() -> None:
    rng = np.random.default_rng(9)
    champion = saturated(rng, 9_500, wrong=0.1)
    canary = saturated(rng, 2_000, changed=0.03, wrong=0.1)
    decision = decide(POLICY, start_rollout(POLICY, T0), champion, canary, T0 + 10)
    shown = {c.name: c.to_dict() for c in decision.checks}
    assert set(shown) == {
        "error_rate",
        "error_rate_vs_champion",
        "p99",
        "p99_vs_champion",
        "decisions",
        "live_quality",
        "prediction_divergence",
    }
    for name in ("error_rate", "p99", "decisions", "live_quality"):
        assert shown[name]["value"] is not None
        assert shown[name]["limit"] is not None
        assert shown[name]["bound"] is not None, name
    assert shown["decisions"]["value"] == pytest.approx(0.03, abs=0.01)


def test_new_policy_fields_are_checked() -> None:
    for bad in (
        {"max_p99_increase_ms": -1.0},
        {"max_decision_change": 0.0},
        {"max_accuracy_drop": float("inf")},
        {"divergence_gate": "yes"},
    ):
        with pytest.raises(ValidationError, match=next(iter(bad))):
            replace(POLICY, **bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"decisions_compared": 10, "decisions_changed": 11}, "decisions_changed must not exceed"),
        ({"decisions_compared": -1}, "decisions_compared must be a non-negative integer"),
        ({"losses": np.array([0.0, -1.0])}, "losses must not contain negative values"),
        ({"losses": np.array([np.nan])}, "losses must be a 1-D array of finite numbers"),
        ({"task": "ranking"}, "task must be 'classification' or 'regression'"),
    ],
)
def test_bad_arm_traffic_names_the_field(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ArmTraffic(10, 0, **fields)  # type: ignore[arg-type]
