"""The soak benchmark's verdict on one series (pure): bounded, or growing.

The rule is stated in ``bench_soak.py``'s docstring; it lives here so that the
benchmark script stays one job (drive, sample, report) and this one is tested alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

# Growth per hour below which a series is bounded whatever its level (see the docstring).
FLOORS = {"rss": 16.0, "fds": 8.0, "wal": 16.0, "latency": 1.0, "cpu": 10.0}
RELATIVE = 0.10  # growth per hour allowed, as a share of the second-half mean
SIGNIFICANCE = 3.0  # standard errors of the slope above zero


@dataclass(frozen=True)
class Trend:
    """Start, end and max of a series, its slope over the second half, and the verdict."""

    start: float
    end: float
    peak: float
    slope_per_h: float
    stderr_per_h: float
    allowance_per_h: float
    verdict: str  # "bounded", "growing" or "too short"


def trend(
    times: Sequence[float],
    values: Sequence[float | None],
    floor_per_h: float,
    relative: float = RELATIVE,
) -> Trend:
    """The docstring's rule over ``values`` sampled at ``times`` (seconds; None: absent)."""
    points = [(t, v) for t, v in zip(times, values, strict=True) if v is not None]
    if not points:
        return Trend(math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, "too short")
    start, end, peak = points[0][1], points[-1][1], max(v for _, v in points)
    late = points[len(points) // 2 :]
    if len(late) < 3:
        return Trend(start, end, peak, math.nan, math.nan, math.nan, "too short")
    ts = [t for t, _ in late]
    vs = [v for _, v in late]
    if max(vs) == min(vs):  # a flat line (open files): linregress would divide by zero
        slope, stderr = 0.0, 0.0
    else:
        fit = stats.linregress(ts, vs)
        slope, stderr = float(fit.slope) * 3600, float(fit.stderr) * 3600
    allowance = max(relative * abs(sum(vs) / len(vs)), floor_per_h)
    growing = slope > SIGNIFICANCE * stderr and slope > allowance
    return Trend(start, end, peak, slope, stderr, allowance, "growing" if growing else "bounded")
