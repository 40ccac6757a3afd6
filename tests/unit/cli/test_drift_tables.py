"""How drift reads on the command line: every drifted feature, strongest first, ``--top``."""

from __future__ import annotations

import pytest

from modelyard.cli.drift_tables import (
    check_top,
    drifted_json,
    drifted_text,
    not_checked_reason,
)
from modelyard.errors import ValidationError
from modelyard.monitoring.drift import DriftReport, FeatureDrift


def feature(name: str, effect: float | None, drifted: bool = True) -> FeatureDrift:
    return FeatureDrift(name, "ks", 0.5, 0.0, 0.01, drifted, "wasserstein", effect, 0.1)


def report(names: tuple[str, ...]) -> DriftReport:
    features = (
        feature("age", 0.2), feature("bmi", 1.4), feature("s4", 0.9),
        feature("s1", 0.3), feature("sex", 0.05, drifted=False), feature("bp", 0.6),
        feature("s2", 0.4), feature("s3", None),
    )  # fmt: skip
    return DriftReport(features, names, len(names) / 8, bool(names), None, None, 500, 400)


STRONGEST_FIRST = ("bmi", "s4", "bp", "s2", "s1", "age", "s3")


def test_every_drifted_feature_in_the_reports_order_with_its_effect() -> None:
    text = drifted_text(report(STRONGEST_FIRST))
    assert text == "bmi (1.4), s4 (0.9), bp (0.6), s2 (0.4), s1 (0.3), age (0.2), s3"
    assert [f["name"] for f in drifted_json(report(STRONGEST_FIRST))] == list(STRONGEST_FIRST)


def test_top_cuts_and_says_how_many_more() -> None:
    assert drifted_text(report(STRONGEST_FIRST), top=2) == "bmi (1.4), s4 (0.9), +5 more (--top)"
    assert drifted_text(report(STRONGEST_FIRST), top=7).endswith("s3")
    assert [f["name"] for f in drifted_json(report(STRONGEST_FIRST), top=1)] == ["bmi"]


def test_nothing_drifted_reads_as_a_dash() -> None:
    assert drifted_text(report(())) == "-"
    assert drifted_json(report(())) == []


def test_top_must_be_positive() -> None:
    assert check_top(None) is None
    assert check_top(3) == 3
    with pytest.raises(ValidationError, match="--top must be at least 1, got 0"):
        check_top(0)


def test_why_a_version_was_not_checked() -> None:
    assert not_checked_reason(12, 20, "fraud", 2) == (
        "12 row(s) in the window, drift needs at least 20"
    )
    assert not_checked_reason(500, 20, "fraud", 2) == (
        "fraud/2 has no reference sample to compare with"
    )
