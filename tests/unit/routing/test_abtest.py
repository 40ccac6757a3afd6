"""A/B statistics: sample sizes, summaries, the peeking guard, always-valid sequential tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.errors import ValidationError
from modelyard.routing.abtest import (
    Conversions,
    ExperimentReport,
    ExperimentVerdict,
    FixedHorizon,
    MeanSummary,
    Sequential,
    analyze,
    sample_size_conversions,
    sample_size_means,
)


def test_sample_size_matches_r_power_prop_test() -> None:
    # R: power.prop.test(p1 = .50, p2 = .75, power = .90)  =>  n = 76.7
    assert sample_size_conversions(0.50, 0.25, alpha=0.05, power=0.90) == 77
    # R: power.prop.test(p1 = .10, p2 = .12, power = .80)  =>  n = 3840.7
    assert sample_size_conversions(0.10, 0.02) == 3841


def test_sample_size_for_means_matches_the_normal_formula() -> None:
    # 2 * (1.959964 + 0.841621)^2 * 1^2 / 0.5^2 = 62.79
    assert sample_size_means(std=1.0, mde=0.5) == 63
    assert FixedHorizon.for_means(std=1.0, mde=0.5).n_per_arm == 63


def test_splitting_alpha_over_treatments_needs_more_samples() -> None:
    one = FixedHorizon.for_conversions(0.10, 0.02)
    two = FixedHorizon.for_conversions(0.10, 0.02, treatments=2)
    assert two.n_per_arm > one.n_per_arm == 3841


@given(
    baseline=st.floats(min_value=0.01, max_value=0.8),
    small=st.floats(min_value=0.005, max_value=0.09),
    factor=st.floats(min_value=1.1, max_value=2.0),
)
def test_smaller_effects_need_larger_samples(baseline: float, small: float, factor: float) -> None:
    assert sample_size_conversions(baseline, small) >= sample_size_conversions(
        baseline, small * factor
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: sample_size_conversions(1.2, 0.01),
            r"baseline must be a rate in \(0, 1\), got 1.2",
        ),
        (lambda: sample_size_conversions(0.1, 0), "mde must be non-zero"),
        (lambda: sample_size_conversions(0.95, 0.1), r"keep baseline \+ mde in \(0, 1\)"),
        (lambda: sample_size_conversions(0.1, 0.01, alpha=0), r"alpha must be in \(0, 1\)"),
        (lambda: sample_size_means(0, 1), "std must be positive, got 0"),
        (lambda: FixedHorizon(0), "n_per_arm must be >= 1, got 0"),
        (lambda: Sequential(tau=-1), "tau must be a positive number, got -1"),
        (lambda: Sequential(0.01, max_samples_per_arm=10), "max_samples_per_arm must be >="),
        (lambda: Conversions(5, 3), "successes must be between 0 and trials, got 5/3"),
    ],
)
def test_bad_designs_and_outcomes_are_refused(call: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        call()  # type: ignore[operator]


@given(
    left=st.lists(st.floats(-1e6, 1e6), max_size=30),
    right=st.lists(st.floats(-1e6, 1e6), max_size=30),
)
def test_welford_summaries_match_numpy_and_merge(left: list[float], right: list[float]) -> None:
    together = MeanSummary.of(left).merge(MeanSummary.of(right))
    values = np.array(left + right)
    assert together.n == values.size
    if values.size:
        assert together.mean == pytest.approx(values.mean(), rel=1e-9, abs=1e-6)
    if values.size > 1:
        assert together.variance == pytest.approx(values.var(ddof=1), rel=1e-6, abs=1e-3)


def test_fixed_horizon_refuses_to_declare_before_the_horizon() -> None:
    design = FixedHorizon.for_conversions(0.10, 0.02)
    early = analyze({"A": Conversions(100, 1_000), "B": Conversions(200, 1_000)}, "A", design)
    assert early.verdict is ExperimentVerdict.CONTINUE
    assert early.winner is None
    assert "peeking guard" in early.reason
    assert early.arm("B").lift == pytest.approx(0.10)
    assert early.arm("B").p_value is None


def test_fixed_horizon_declares_at_the_horizon() -> None:
    design = FixedHorizon.for_conversions(0.10, 0.02)
    n = design.n_per_arm
    won = analyze({"A": Conversions(n // 10, n), "B": Conversions(n * 13 // 100, n)}, "A", design)
    assert won.verdict is ExperimentVerdict.WINNER
    assert won.winner == "B"
    b = won.arm("B")
    assert b.p_value is not None
    assert b.p_value < 0.05
    assert b.ci_low is not None
    assert b.ci_high is not None
    assert b.lift is not None
    assert 0 < b.ci_low < b.lift < b.ci_high
    assert b.relative_lift == pytest.approx(0.3, abs=0.01)
    flat = analyze({"A": Conversions(n // 10, n), "B": Conversions(n // 10 + 3, n)}, "A", design)
    assert flat.verdict is ExperimentVerdict.NONE
    assert "at the horizon" in flat.reason


def test_control_wins_when_every_treatment_is_worse_and_direction_can_flip() -> None:
    design = FixedHorizon(n_per_arm=1_000)
    fast = MeanSummary.of(np.random.default_rng(1).normal(100, 10, 1_000).tolist())
    slow = MeanSummary.of(np.random.default_rng(2).normal(110, 10, 1_000).tolist())
    higher = analyze({"control": fast, "new": slow}, "control", design)
    assert (higher.verdict, higher.winner) == (ExperimentVerdict.WINNER, "new")
    lower = analyze({"control": fast, "new": slow}, "control", design, higher_is_better=False)
    assert (lower.verdict, lower.winner) == (ExperimentVerdict.WINNER, "control")
    assert "control beats every treatment" in lower.reason


def _watch(
    rng: np.random.Generator, rates: tuple[float, float], design: Sequential, looks: int, batch: int
) -> list[ExperimentReport]:
    reports: list[ExperimentReport] = []
    a = np.cumsum(rng.binomial(batch, rates[0], looks))
    b = np.cumsum(rng.binomial(batch, rates[1], looks))
    previous = None
    for look in range(looks):
        n = batch * (look + 1)
        arms = {"A": Conversions(int(a[look]), n), "B": Conversions(int(b[look]), n)}
        previous = analyze(arms, "A", design, previous=previous)
        reports.append(previous)
        if previous.verdict is ExperimentVerdict.WINNER:
            break
    return reports


def test_sequential_p_values_stay_valid_under_continuous_monitoring() -> None:
    rng = np.random.default_rng(2024)
    design = Sequential(tau=0.01)
    runs = 300
    declared = sum(
        _watch(rng, (0.1, 0.1), design, looks=30, batch=200)[-1].verdict is ExperimentVerdict.WINNER
        for _ in range(runs)
    )
    # alpha = 0.05; allow sampling noise of 300 runs (sd ~ 1.3 points).
    assert declared / runs <= 0.07


def test_sequential_p_values_fall_monotonically_and_intervals_nest() -> None:
    reports = _watch(np.random.default_rng(5), (0.10, 0.13), Sequential(tau=0.02), 60, 200)
    b = [r.arm("B") for r in reports if r.arm("B").p_value is not None]
    p_values = [arm.p_value for arm in b]
    assert p_values == sorted(p_values, reverse=True)  # type: ignore[type-var]
    for before, after in zip(b, b[1:], strict=False):
        assert before.ci_low <= after.ci_low <= after.ci_high <= before.ci_high  # type: ignore[operator]
    assert reports[-1].verdict is ExperimentVerdict.WINNER
    assert reports[-1].winner == "B"
    assert "always-valid p" in reports[-1].reason


def test_sequential_waits_for_min_samples_and_stops_at_max() -> None:
    design = Sequential(tau=0.01, min_samples_per_arm=500, max_samples_per_arm=1_000)
    early = analyze({"A": Conversions(0, 100), "B": Conversions(100, 100)}, "A", design)
    assert early.verdict is ExperimentVerdict.CONTINUE
    assert "collecting: 100 of the 500" in early.reason
    capped = analyze({"A": Conversions(100, 1_000), "B": Conversions(101, 1_000)}, "A", design)
    assert capped.verdict is ExperimentVerdict.NONE
    assert "maximum of 1000 per arm" in capped.reason


@settings(max_examples=60)
@given(
    s_a=st.integers(0, 2_000),
    s_b=st.integers(0, 2_000),
    n=st.integers(2_000, 5_000),
    tau=st.floats(0.001, 0.5),
)
def test_sequential_p_value_and_interval_agree(s_a: int, s_b: int, n: int, tau: float) -> None:
    report = analyze({"A": Conversions(s_a, n), "B": Conversions(s_b, n)}, "A", Sequential(tau))
    b = report.arm("B")
    assert b.p_value is not None
    assert b.ci_low is not None
    assert b.ci_high is not None
    assert b.lift is not None
    assert 0 <= b.p_value <= 1
    assert b.ci_low <= b.lift <= b.ci_high
    # Rejecting "no difference" at alpha is the same as 0 falling outside the sequence.
    if not math.isclose(b.p_value, 0.05, rel_tol=1e-6):
        assert (b.p_value <= 0.05) == (not b.ci_low <= 0 <= b.ci_high)


@pytest.mark.parametrize(
    ("arms", "control", "message"),
    [
        ({"A": Conversions(1, 10)}, "A", "a control and at least one treatment"),
        ({"A": Conversions(1, 10), "B": Conversions(1, 10)}, "C", "control 'C' is not among"),
        (
            {"A": Conversions(1, 10), "B": MeanSummary(10, 1.0, 2.0)},
            "A",
            "must all be Conversions or all MeanSummary",
        ),
    ],
)
def test_bad_experiments_are_refused(
    arms: dict[str, Conversions | MeanSummary], control: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        analyze(arms, control, FixedHorizon(10))
