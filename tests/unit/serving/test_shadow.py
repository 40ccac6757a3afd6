"""When a shadow lane takes a copy and when the copy is dropped (``shadow.admits``)."""

from __future__ import annotations

from typing import Any

from modelyard.serving.hosting.shadow import admits

# A lane whose batches of 8 rows took 10 ms at warm-up, under a 1 s timeout.
LANE: dict[str, Any] = {
    "saturated": False,
    "running_s": 0.0,
    "inflight": 0,
    "max_inflight": 256,
    "full_batch_s": 0.01,
    "batch_size": 8,
    "timeout_s": 1.0,
}


def test_a_lane_takes_what_it_can_answer_in_time() -> None:
    # 1 s / 10 ms = 100 batches, one running: 99 batches of 8 rows may wait.
    assert admits(rows=1, queued_rows=0, **LANE)
    assert admits(rows=1, queued_rows=99 * 8 - 1, **LANE)
    assert not admits(rows=1, queued_rows=99 * 8, **LANE)


def test_a_worker_holds_at_most_max_inflight_copies() -> None:
    assert not admits(rows=1, queued_rows=0, **{**LANE, "inflight": 256})
    assert not admits(rows=1, queued_rows=0, **{**LANE, "saturated": True})


def test_a_slow_running_call_shrinks_the_room() -> None:
    # The call running now has taken 400 ms: at that pace one more batch fits in 1 s.
    slow = {**LANE, "running_s": 0.4}
    assert admits(rows=8, queued_rows=0, **slow)
    assert not admits(rows=1, queued_rows=8, **slow)


def test_a_lane_hung_past_the_timeout_takes_nothing() -> None:
    hung = {**LANE, "running_s": 1.0}
    assert not admits(rows=1, queued_rows=0, **hung)
    assert not admits(rows=1, queued_rows=0, **{**LANE, "running_s": 3600.0})
