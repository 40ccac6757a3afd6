"""The validation gate: margins as MLflow's MetricThreshold, sanity checks, every figure kept."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.errors import ValidationError
from modelyard.pipelines import GateEvidence, GatePolicy, judge
from modelyard.pipelines.evaluation import gain_lower_bound


def evidence(score: float, champion: float | None, **overrides: object) -> GateEvidence:
    values: dict[str, object] = {
        "candidate": {"roc_auc": score, "log_loss": 1 - score},
        "champion": None if champion is None else {"roc_auc": champion, "log_loss": 1 - champion},
        "holdout_rows": 1_000,
        "non_finite_outputs": 0,
        "latency_p99_ms": 0.2,
        "signature_problem": None,
    }
    values.update(overrides)
    return GateEvidence(**values)  # type: ignore[arg-type]


def checks(result: object) -> dict[str, bool]:
    return {c.name: c.passed for c in result.checks}  # type: ignore[attr-defined]


def test_a_candidate_that_beats_the_champion_by_the_margin_passes_with_its_figures() -> None:
    result = judge(GatePolicy(min_absolute_change=0.01), evidence(0.931, 0.902))
    assert result.passed
    assert result.reason == "beat the champion on roc_auc 0.931 vs 0.902"
    beats = next(c for c in result.checks if c.name == "beats_champion")
    assert beats.value == pytest.approx(0.029)
    assert beats.limit == 0.01
    assert result.to_dict()["checks"][0]["name"] == "holdout_rows"


def test_a_candidate_short_of_the_margin_is_stopped_saying_by_how_much() -> None:
    result = judge(GatePolicy(min_absolute_change=0.05), evidence(0.931, 0.902))
    assert not result.passed
    assert checks(result)["beats_champion"] is False
    assert "does not beat the champion by 0.05: roc_auc 0.931 vs 0.902" in result.reason


def test_a_relative_margin_is_judged_on_the_champions_value() -> None:
    policy = GatePolicy(min_absolute_change=None, min_relative_change=0.05)
    assert judge(policy, evidence(0.95, 0.90)).passed  # +5.6%
    assert not judge(policy, evidence(0.94, 0.90)).passed  # +4.4%


def test_a_loss_must_fall_not_rise() -> None:
    policy = GatePolicy(metric="log_loss", min_absolute_change=0.01)
    assert judge(policy, evidence(0.95, 0.90)).passed  # loss 0.05 vs 0.10
    assert not judge(policy, evidence(0.90, 0.95)).passed


def test_an_absolute_threshold_holds_whatever_the_champion_does() -> None:
    result = judge(GatePolicy(threshold=0.95), evidence(0.93, 0.5))
    assert not result.passed
    assert checks(result) == {
        "holdout_rows": True,
        "signature": True,
        "finite_outputs": True,
        "latency_p99_ms": True,
        "metric": True,
        "threshold": False,
        "beats_champion": True,
    }


def test_without_a_champion_the_candidate_is_judged_on_its_own() -> None:
    assert judge(GatePolicy(), evidence(0.7, None)).passed


@pytest.mark.parametrize(
    ("overrides", "failed", "words"),
    [
        ({"non_finite_outputs": 3}, "finite_outputs", "3 outputs are NaN or infinite"),
        ({"latency_p99_ms": 80.0}, "latency_p99_ms", "over the 50 ms budget"),
        ({"holdout_rows": 20}, "holdout_rows", "fewer than the 100 needed"),
        ({"signature_problem": "missing inputs x4"}, "signature", "inputs differ: missing"),
        ({"candidate": {"accuracy": 0.9}}, "metric", "the candidate has no roc_auc"),
    ],
)
def test_a_failed_sanity_check_stops_even_a_better_candidate(
    overrides: dict[str, object], failed: str, words: str
) -> None:
    result = judge(GatePolicy(), evidence(0.99, 0.5, **overrides))
    assert not result.passed
    assert not checks(result)[failed]
    assert words in result.reason


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"metric": "auc"}, "gate metric 'auc' is unknown"),
        ({"min_absolute_change": "0.1"}, "min_absolute_change must be a number"),
        ({"max_latency_ms": 0}, "max_latency_ms must be a positive number"),
        ({"min_holdout_rows": 0}, "min_holdout_rows must be an integer >= 1"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_field(settings: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        GatePolicy(**settings)  # type: ignore[arg-type]


def test_a_policy_survives_its_json_and_refuses_unknown_fields() -> None:
    policy = GatePolicy(metric="accuracy", min_relative_change=0.01)
    assert GatePolicy.from_dict(policy.to_dict()) == policy
    with pytest.raises(ValidationError, match=r"unknown gate setting\(s\) \['margin'\]"):
        GatePolicy.from_dict({"margin": 1})


def test_a_tie_within_the_bootstrap_interval_is_no_win() -> None:
    policy = GatePolicy(min_absolute_change=0.0)
    lucky = judge(policy, evidence(0.905, 0.902, gain_lower_bound=-0.004))
    assert not lucky.passed
    assert "with 95% confidence (gain >= -0.004)" in lucky.reason
    sure = judge(policy, evidence(0.931, 0.902, gain_lower_bound=0.012))
    assert sure.passed
    assert sure.reason.endswith("gain +0.029 (>= +0.012 at 95%)")
    unmeasured = judge(GatePolicy(confidence=None), evidence(0.905, 0.902, gain_lower_bound=-1.0))
    assert unmeasured.passed


def test_the_paired_bootstrap_bounds_the_gain_on_the_same_rows() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 2_000)
    good = np.clip(truth + rng.normal(0, 0.35, truth.size), 0, 1)
    same = {"score": good}
    better = {"score": np.clip(truth + rng.normal(0, 0.2, truth.size), 0, 1)}
    policy = GatePolicy()
    tie = gain_lower_bound(policy, same, same, truth.astype(object))
    assert tie is not None
    assert tie <= 0.0
    win = gain_lower_bound(policy, better, same, truth.astype(object))
    assert win is not None
    assert win > 0.0
    loss = gain_lower_bound(GatePolicy(metric="log_loss"), same, better, truth.astype(object))
    assert loss is not None
    assert loss < 0.0


def test_with_no_metric_only_the_sanity_checks_judge_a_ranked_list_model() -> None:
    lists = evidence(0.0, 0.0, candidate={})  # nothing scored: ranked lists
    passed = judge(GatePolicy(metric="none"), lists)
    assert passed.passed
    assert passed.reason == "passed the checks (no offline metric compared: live traffic judges it)"
    assert set(checks(passed)) == {"holdout_rows", "signature", "finite_outputs", "latency_p99_ms"}
    assert not judge(GatePolicy(metric="none"), evidence(0, 0, latency_p99_ms=80.0)).passed
    assert not judge(GatePolicy(), lists).passed  # a metric the candidate lacks still fails
