"""Reference and live histograms of one feature on shared bins, for the drift pages.

Pure functions of a profile's JSON and a column of live values. The reference side is
the version's stored profile (``registry.profile``): for a numeric feature its 101
quantiles give the reference's distribution function at any edge (linear between two
quantiles), so both sides share bins chosen to cover the live values as well, and no
row sample is read; for a categorical one, its top category shares. The live side is
the bounded sample of a check's window the caller read. Both sides are shares (they sum
to 1), so a 5,000-row reference and a 500-row sample compare at a glance.

A drift check stores its verdicts, not histograms (``DriftReport``): these are drawn
when a page asks, for the window the check judged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

BINS = 20
TOP_CATEGORIES = 12
OTHER = "(other)"
# The bins span the 1st to the 99th percentile of both sides: a few extreme values must
# not squeeze the rest into one bar. What lies beyond falls in the end bins.
_TAIL = 0.01


@dataclass(frozen=True)
class Histogram:
    """One feature's shares per bin. Numeric: ``edges`` (``len(reference) + 1`` of them;
    the end bins also hold the values beyond them); categorical: ``categories``.
    ``reference`` is None when the profile says nothing of the feature."""

    feature: str
    kind: Literal["numeric", "categorical"]
    reference: list[float] | None
    live: list[float]
    live_rows: int
    edges: list[float] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "kind": self.kind,
            "edges": self.edges,
            "categories": self.categories,
            "reference": self.reference,
            "live": self.live,
            "live_rows": self.live_rows,
        }


def histogram(name: str, profile: Mapping[str, Any] | None, live: npt.NDArray[Any]) -> Histogram:
    """``name``'s histogram: numeric or categorical as its profile says (without one, as
    the live values' dtype says)."""
    kind = None if profile is None else profile.get("kind")
    numbers = _numbers(live)
    if kind == "categorical" or (kind is None and numbers is None):
        return categorical(name, profile, live)
    if numbers is None:  # a numeric profile, values that are not numbers
        return categorical(name, None, live)
    return numeric(name, profile, numbers)


def numeric(
    name: str, profile: Mapping[str, Any] | None, live: npt.NDArray[np.float64]
) -> Histogram:
    """Shares of the reference and the live values in ``BINS`` equal bins."""
    values = live[np.isfinite(live)]
    quantiles = None if profile is None else profile.get("quantiles")
    reference = np.asarray(quantiles, dtype=np.float64) if quantiles else None
    ends: list[float] = []
    if reference is not None and reference.size >= 3:
        at = max(1, round(_TAIL * (reference.size - 1)))
        ends += [float(reference[at]), float(reference[-1 - at])]
    else:
        reference = None
    if values.size:
        ends += np.quantile(values, [_TAIL, 1.0 - _TAIL]).tolist()
    if not ends:
        return Histogram(name, "numeric", None, [], 0)
    low, high = min(ends), max(ends)
    whole = _integers(reference, values, low, high)
    if whole:  # counts, codes: one bin per value, and the reference's own steps
        low, high = math.floor(low) - 0.5, math.ceil(high) + 0.5
        edges = np.arange(low, high + 0.5)
    else:
        if not high > low:
            low, high = low - 0.5, high + 0.5
        edges = np.linspace(low, high, BINS + 1)
    bins = edges.size - 1
    live_shares = [0.0] * bins
    if values.size:
        counts = np.histogram(np.clip(values, low, high), bins=edges)[0]
        live_shares = (counts / values.size).tolist()
    reference_shares = None if reference is None else _shares(reference, edges, steps=whole)
    return Histogram(
        name, "numeric", reference_shares, live_shares, int(values.size), edges=edges.tolist()
    )


def categorical(name: str, profile: Mapping[str, Any] | None, live: npt.NDArray[Any]) -> Histogram:
    """Shares of the most common categories of either side, then the rest as ``(other)``."""
    frequencies = None if profile is None else profile.get("frequencies")
    reference = {str(k): float(v) for k, v in (frequencies or {}).items()}
    keys = [_category(v) for v in live.tolist()]
    present = [k for k in keys if k is not None]
    labels, counts = np.unique(np.array(present, dtype=str), return_counts=True)
    live_shares = {str(k): int(c) / len(present) for k, c in zip(labels, counts, strict=True)}
    ranked = sorted(
        set(reference) | set(live_shares),
        key=lambda k: (-max(reference.get(k, 0.0), live_shares.get(k, 0.0)), k),
    )
    shown = ranked[:TOP_CATEGORIES]
    ref = [reference.get(k, 0.0) for k in shown]
    now = [live_shares.get(k, 0.0) for k in shown]
    rest_ref = max(0.0, 1.0 - sum(ref))
    rest_live = max(0.0, 1.0 - sum(now)) if present else 0.0
    if len(ranked) > len(shown) or rest_ref > 1e-9 or rest_live > 1e-9:
        shown, ref, now = [*shown, OTHER], [*ref, rest_ref], [*now, rest_live]
    return Histogram(
        name,
        "categorical",
        ref if frequencies else None,
        now,
        len(present),
        categories=shown,
    )


def _integers(
    reference: npt.NDArray[np.float64] | None,
    live: npt.NDArray[np.float64],
    low: float,
    high: float,
) -> bool:
    """Whether both sides hold whole numbers only, over at most ``BINS`` values."""
    sides = [side for side in (reference, live) if side is not None and side.size]
    return (
        bool(sides)
        and all(bool(np.all(side == np.round(side))) for side in sides)
        and math.ceil(high) - math.floor(low) < BINS
    )


def _shares(
    quantiles: npt.NDArray[np.float64], edges: npt.NDArray[np.float64], *, steps: bool
) -> list[float]:
    """The reference's share of each bin, from its quantiles (the end bins open-ended):
    its distribution function linear between quantiles, or, with ``steps`` (whole
    numbers), a step at each (within 1% of the truth with 101 quantiles)."""
    levels = np.linspace(0.0, 1.0, quantiles.size)
    # Equal quantiles are a point mass: the distribution function jumps there, so keep
    # the highest level of each value (np.interp needs increasing points).
    values, last = np.unique(quantiles[::-1], return_index=True)
    heights = levels[quantiles.size - 1 - last]
    if steps:
        below = np.searchsorted(values, edges[1:-1], side="right") - 1
        inner = np.where(below >= 0, heights[np.maximum(below, 0)], 0.0)
    else:
        inner = np.interp(edges[1:-1], values, heights, left=0.0, right=1.0)
    cdf = np.concatenate([[0.0], inner, [1.0]])
    shares: list[float] = np.clip(np.diff(cdf), 0.0, 1.0).tolist()
    return shares


def _numbers(values: npt.NDArray[Any]) -> npt.NDArray[np.float64] | None:
    if values.dtype.kind in "fiub":
        return values.astype(np.float64)
    try:
        return np.array([math.nan if v is None else float(v) for v in values.tolist()])
    except (TypeError, ValueError):
        return None


def _category(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)
