"""Latencies in fixed memory: HDR-style log-linear buckets, percentiles and a summary.

The load generator (``generator``) records every answer's latency here, so a run of
any length holds the same ~13,800 counters; percentiles come back within 0.2%.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from modelyard.errors import ValidationError

# Log-linear buckets of integer microseconds (HdrHistogram's layout): exact below
# 1,024 us, then 512 buckets per power of two (within 0.2%), up to ~9.5 hours.
_SUB_BITS = 10
_SUB = 1 << _SUB_BITS  # 1024
_HALF = _SUB >> 1  # 512
_MAX_SHIFT = 25
MAX_TRACKABLE_US = (_SUB << _MAX_SHIFT) - 1
BUCKETS = _SUB + _MAX_SHIFT * _HALF


def bucket_of(us: int) -> int:
    """The bucket index of a latency in whole microseconds (clipped to the trackable range)."""
    if us < _SUB:
        return us if us > 0 else 0
    if us > MAX_TRACKABLE_US:
        us = MAX_TRACKABLE_US
    shift = us.bit_length() - _SUB_BITS
    return _SUB + (shift - 1) * _HALF + (us >> shift) - _HALF


def bucket_ceiling(index: int) -> int:
    """The largest latency (us) that falls into bucket ``index``."""
    if index < _SUB:
        return index
    shift, offset = divmod(index - _SUB, _HALF)
    shift += 1
    return ((offset + _HALF + 1) << shift) - 1


class LatencyHistogram:
    """Latencies in fixed memory, whatever the run's length (HDR-style buckets).

    ``record`` takes seconds; percentiles come back in seconds as the ceiling of
    their bucket (never below the true value, at most 0.2% above it), capped at
    the exact maximum.
    """

    __slots__ = ("counts", "count", "max_us", "total_us")

    def __init__(self) -> None:
        self.counts = [0] * BUCKETS
        self.count = 0
        self.max_us = 0
        self.total_us = 0

    def record(self, seconds: float) -> None:
        us = int(seconds * 1e6)
        if us < 0:
            us = 0
        if us < _SUB:
            self.counts[us] += 1
        else:
            self.counts[bucket_of(us)] += 1
        self.count += 1
        self.total_us += us
        if us > self.max_us:
            self.max_us = us

    def merge(self, other: LatencyHistogram) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.count += other.count
        self.total_us += other.total_us
        self.max_us = max(self.max_us, other.max_us)

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0-100) in seconds; NaN when nothing was recorded."""
        if not 0 <= q <= 100:
            raise ValidationError(f"a percentile must be between 0 and 100, got {q!r}")
        if self.count == 0:
            return math.nan
        rank = max(1, math.ceil(q / 100 * self.count))
        index = int(np.searchsorted(np.cumsum(self.counts), rank))
        return min(bucket_ceiling(index), self.max_us) / 1e6

    def summary(self) -> LatencySummary:
        if self.count == 0:
            return LatencySummary(0, math.nan, math.nan, math.nan, math.nan, math.nan)
        return LatencySummary(
            count=self.count,
            mean_s=self.total_us / self.count / 1e6,
            p50_s=self.percentile(50),
            p90_s=self.percentile(90),
            p99_s=self.percentile(99),
            max_s=self.max_us / 1e6,
        )


@dataclass(frozen=True)
class LatencySummary:
    """Latency percentiles of a run, in seconds."""

    count: int
    mean_s: float
    p50_s: float
    p90_s: float
    p99_s: float
    max_s: float
