"""The live phase's decisions, over plain data: when each request goes out, which labels
are due, and the latency figures. No clock, no sockets: the driver (``live.py``) passes
times in."""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from modelyard.errors import ValidationError

__all__ = ["DueLabel", "LabelSchedule", "percentile_ms", "send_offsets"]


def send_offsets(
    event_times: Sequence[float] | np.ndarray,
    start: float,
    speedup: float,
    max_rate: float | None = None,
) -> np.ndarray:
    """When each transaction's request goes out, in wall seconds after the run starts.

    The transaction at simulated ``t`` goes at ``(t - start) / speedup``; with
    ``max_rate`` (requests per wall second) no two go closer than ``1 / max_rate``, so a
    burst is spread out and the run falls behind simulated time rather than overrun the
    server. ``event_times`` must be sorted.
    """
    if not (math.isfinite(speedup) and speedup > 0):
        raise ValidationError(f"speedup must be a positive number, got {speedup!r}")
    if max_rate is not None and not (math.isfinite(max_rate) and max_rate > 0):
        raise ValidationError(f"max_rate must be a positive number or None, got {max_rate!r}")
    times = np.asarray(event_times, dtype=np.float64)
    if times.size and bool(np.any(np.diff(times) < 0)):
        raise ValidationError("event_times must be sorted, oldest first")
    offsets = np.maximum(times - start, 0.0) / speedup
    if max_rate is None or not offsets.size:
        return offsets
    gap = 1.0 / max_rate
    # due[i] = max(offsets[i], due[i-1] + gap): subtract i*gap, take the running
    # maximum, add it back.
    steps = np.arange(offsets.size) * gap
    result: np.ndarray = np.maximum.accumulate(offsets - steps) + steps
    return result


@dataclass(frozen=True, order=True)
class DueLabel:
    """A label to post once simulated time reaches ``due``."""

    due: float
    request_id: str
    label: int


class LabelSchedule:
    """Labels waiting for their simulated time, taken out oldest first."""

    def __init__(self) -> None:
        self._heap: list[DueLabel] = []

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, label: DueLabel) -> None:
        heapq.heappush(self._heap, label)

    def take_due(self, now: float) -> list[DueLabel]:
        """Every label with ``due <= now``, oldest first; they leave the schedule."""
        out = []
        while self._heap and self._heap[0].due <= now:
            out.append(heapq.heappop(self._heap))
        return out

    def take_all(self) -> list[DueLabel]:
        """Every label left, oldest first."""
        out = sorted(self._heap)
        self._heap.clear()
        return out


def percentile_ms(latencies_s: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of latencies in seconds, in milliseconds; NaN when
    there are none."""
    if not latencies_s:
        return math.nan
    return float(np.percentile(np.asarray(latencies_s, dtype=np.float64), q)) * 1000.0
