"""The optimisation gate: pure checks of a candidate's figures against its parent's."""

from __future__ import annotations

from dataclasses import replace

import pytest

from modelyard.errors import ValidationError
from modelyard.optimize import Figures, OptimizePolicy, judge

CLASSES = {str(i): 0.98 for i in range(10)}
PARENT = Figures(2_000_000, 500_000, 1.0, 2.0, 10.0, 12.0, 3200.0, 0.98, CLASSES)


def candidate(**changes: object) -> Figures:
    smaller_and_faster: dict[str, object] = {"size_bytes": 520_000, "p50_ms_1": 0.5}
    return replace(PARENT, **{**smaller_and_faster, **changes})  # type: ignore[arg-type]


def test_a_smaller_candidate_as_accurate_passes() -> None:
    verdict = judge(PARENT, candidate(), OptimizePolicy())
    assert verdict.passed, verdict.reason
    assert verdict.reason == "passed"


def test_a_candidate_that_breaks_one_class_is_refused_though_overall_accuracy_holds() -> None:
    broken = dict(CLASSES, **{"7": 0.90})  # 8 points on one digit, 0.8 overall
    verdict = judge(PARENT, candidate(accuracy=0.972, class_accuracy=broken), OptimizePolicy())
    assert not verdict.passed
    failed = [c for c in verdict.checks if not c.passed]
    assert [c.name for c in failed] == ["every class"]
    assert "class '7'" in failed[0].detail
    assert "drop 8.00 points" in failed[0].detail


def test_an_overall_drop_past_the_allowance_is_refused() -> None:
    verdict = judge(PARENT, candidate(accuracy=0.965), OptimizePolicy(max_drop_points=1.0))
    assert not verdict.passed
    assert "accuracy:" in verdict.reason
    assert "drop 1.50 points" in verdict.reason
    assert judge(PARENT, candidate(accuracy=0.965), OptimizePolicy(max_drop_points=2.0)).passed


def test_the_goal_decides_whether_size_or_speed_must_improve() -> None:
    same_speed = candidate(p50_ms_1=PARENT.p50_ms_1)
    assert judge(PARENT, same_speed, OptimizePolicy(goal="smaller")).passed
    assert judge(PARENT, same_speed, OptimizePolicy(goal="either")).passed
    refused = judge(PARENT, same_speed, OptimizePolicy(goal="faster"))
    assert not refused.passed
    assert "faster" in refused.reason
    assert not judge(PARENT, same_speed, OptimizePolicy(goal="both")).passed
    assert not judge(PARENT, candidate(), OptimizePolicy(goal="smaller", min_shrink=4.0)).passed
    unchanged = replace(PARENT)
    assert not judge(PARENT, unchanged, OptimizePolicy()).passed


def test_the_verdict_keeps_every_figure_for_the_event() -> None:
    document = judge(PARENT, candidate(), OptimizePolicy()).to_dict()
    assert document["passed"] is True
    assert {c["name"] for c in document["checks"]} == {
        "smaller or faster",
        "accuracy",
        "every class",
    }


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"goal": "cheaper"}, "optimize goal 'cheaper' is unknown"),
        ({"max_drop_points": -1}, "max_drop_points must be a number >= 0"),
        ({"min_speedup": 0.5}, "min_speedup must be a number >= 1"),
    ],
)
def test_a_bad_policy_names_its_field(changes: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        OptimizePolicy(**changes)  # type: ignore[arg-type]


def test_worst_class_names_the_lowest() -> None:
    figures = candidate(class_accuracy={"a": 0.9, "b": 0.5, "c": 0.5})
    assert figures.worst_class == ("b", 0.5)
