"""Flagger's builtin canary rule, applied to windows recorded for modelyard's judgement.

Flagger judges each interval on thresholds (request success rate >= 99%, request
duration p99 <= 500 ms by default), counts failed intervals and rolls back at
``threshold`` of them; an interval that passes advances the weight, and the one at the
last step before 100% promotes.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_SUCCESS_RATE = 0.99
MAX_P99_MS = 500.0


@dataclass(frozen=True)
class Interval:
    """What Flagger's builtin metrics see of the canary in one interval."""

    requests: int
    errors: int
    p99_ms: float | None


def verdict(intervals: list[Interval], threshold: int, steps: int) -> str:
    """ "promoted", "rolled back", or "undecided" (the windows ran out first: modelyard
    ended the rollout earlier than Flagger would have). ``steps`` counts the weights up
    to and including 100%."""
    failures = passed = 0
    for interval in intervals:
        success = 1 - interval.errors / interval.requests if interval.requests else 1.0
        if success < MIN_SUCCESS_RATE or (interval.p99_ms or 0.0) > MAX_P99_MS:
            failures += 1
            if failures >= threshold:
                return "rolled back"
        else:
            passed += 1
            if passed >= steps - 1:
                return "promoted"
    return "undecided"
