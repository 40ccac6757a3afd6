"""A version's reference profile as the version page shows it: a row of figures per
column, and a histogram on equal-width bins for the first few.

The stored histogram's bins are quantile bins (each holds about the same number of
rows), so drawn as equal slots every column would look flat. The profile's 101
quantiles give the column's distribution function instead; ``equal_width_histogram``
reads each equal-width bin's share off it, which is the shape a person expects.
Pure: the profile's JSON in, JSON-ready documents out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

HISTOGRAM_BINS = 20
HISTOGRAM_COLUMNS = 12  # histograms drawn per group; the table lists every column
TOP_CATEGORIES = 10


def equal_width_histogram(
    quantiles: Sequence[float], bins: int = HISTOGRAM_BINS
) -> dict[str, list[float]]:
    """Shares of the rows in ``bins`` equal-width bins from the lowest to the highest
    quantile (``quantiles``: the values at evenly spaced probabilities, 0 to 1)."""
    values = np.asarray(quantiles, dtype=np.float64)
    if values.size < 2 or not np.all(np.isfinite(values)):
        return {"edges": [], "shares": []}
    low, high = float(values[0]), float(values[-1])
    if high <= low:  # one value: one bin holds every row
        return {"edges": [low, low], "shares": [1.0]}
    probabilities = np.linspace(0.0, 1.0, values.size)
    edges = np.linspace(low, high, bins + 1)
    cumulative = np.interp(edges, values, probabilities)
    # Bins are closed at both outer ends: a value many rows share at the lowest (or the
    # highest) quantile makes the function jump there, and that mass belongs inside.
    cumulative[0], cumulative[-1] = 0.0, 1.0
    shares = np.clip(np.diff(cumulative), 0.0, 1.0)
    return {"edges": edges.tolist(), "shares": shares.tolist()}


def column_summary(name: str, stats: Mapping[str, Any], with_histogram: bool) -> dict[str, Any]:
    """One column's figures: numeric (mean, spread, quartiles, a histogram) or categorical
    (its most frequent values)."""
    summary: dict[str, Any] = {
        "name": name,
        "kind": stats.get("kind"),
        "count": stats.get("count"),
        "nan_fraction": stats.get("nan_fraction"),
    }
    if stats.get("kind") == "categorical":
        frequencies = stats.get("frequencies") or {}
        top = sorted(frequencies.items(), key=lambda item: -item[1])[:TOP_CATEGORIES]
        summary["top"] = [{"value": value, "share": share} for value, share in top]
        summary["categories"] = len(frequencies)
        return summary
    quantiles = stats.get("quantiles") or []
    summary.update(
        mean=stats.get("mean"),
        std=stats.get("std"),
        min=stats.get("min"),
        max=stats.get("max"),
        quartiles=[quantiles[i * (len(quantiles) - 1) // 4] for i in (1, 2, 3)]
        if len(quantiles) >= 5
        else None,
    )
    if with_histogram and quantiles:
        summary["histogram"] = equal_width_histogram(quantiles)
    return summary


def profile_summary(profile: Mapping[str, Any]) -> dict[str, Any] | None:
    """What the version page shows of a reference profile; None for a version without one."""
    if not profile:
        return None

    def group(columns: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [
            column_summary(name, stats, with_histogram=i < HISTOGRAM_COLUMNS)
            for i, (name, stats) in enumerate(columns.items())
        ]

    return {
        "rows": profile.get("rows"),
        "sample_rows": profile.get("sample_rows"),
        "features": group(profile.get("features") or {}),
        "predictions": group(profile.get("predictions") or {}),
        "histogram_columns": HISTOGRAM_COLUMNS,
    }
