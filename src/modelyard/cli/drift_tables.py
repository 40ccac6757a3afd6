"""How ``monitor check`` and ``monitor drift`` show drift: every drifted feature, and
why a version was not checked. Pure functions of the stored reports.

Drifted features are listed strongest evidence first, the order drift detection gives
``DriftReport.drifted_features`` (p-value over its corrected threshold, then effect size
over its floor), each with its effect size; ``--top N`` keeps the first N and says how
many more there are, so nothing drifted is hidden without saying so.
"""

from __future__ import annotations

from typing import Any

from modelyard.errors import ValidationError
from modelyard.monitoring.drift import DriftReport, FeatureDrift


def check_top(top: int | None) -> int | None:
    """``--top``: None (all) or a positive count."""
    if top is not None and top < 1:
        raise ValidationError(f"--top must be at least 1, got {top}")
    return top


def drifted(report: DriftReport) -> list[FeatureDrift]:
    """The report's drifted features, strongest evidence first."""
    by_name = {f.name: f for f in report.features}
    return [by_name[name] for name in report.drifted_features if name in by_name]


def drifted_text(report: DriftReport, top: int | None = None) -> str:
    """``f0 (0.91), f3 (0.40)``: the drifted features with their effect sizes, the first
    ``top`` of them, then ``+N more``; ``-`` when none drifted."""
    found = drifted(report)
    names = list(report.drifted_features)
    if not names:
        return "-"
    sizes = {f.name: f.effect_size for f in found}
    shown = names if top is None else names[:top]
    text = ", ".join(
        name if sizes.get(name) is None else f"{name} ({sizes[name]:.3g})" for name in shown
    )
    hidden = len(names) - len(shown)
    return text + (f", +{hidden} more (--top)" if hidden else "")


def drifted_json(report: DriftReport, top: int | None = None) -> list[dict[str, Any]]:
    """The drifted features as JSON, strongest evidence first (the first ``top``)."""
    found = [f.to_dict() for f in drifted(report)]
    return found if top is None else found[:top]


def not_checked_reason(rows: int, min_rows: int, model: str, version: int) -> str:
    """Why a version that served traffic in the window has no drift check."""
    if rows < min_rows:
        return f"{rows} row(s) in the window, drift needs at least {min_rows}"
    return f"{model}/{version} has no reference sample to compare with"
