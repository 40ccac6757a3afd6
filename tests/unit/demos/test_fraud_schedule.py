"""The live phase's pacing and label scheduling, on plain numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelyard.demos.fraud.schedule import DueLabel, LabelSchedule, percentile_ms, send_offsets
from modelyard.errors import ValidationError

START = 1_000.0


def test_requests_go_at_their_simulated_time_divided_by_the_speedup() -> None:
    offsets = send_offsets([START, START + 60, START + 60, START + 3_600], START, speedup=60)
    assert offsets.tolist() == [0.0, 1.0, 1.0, 60.0]


def test_a_rate_cap_spreads_a_burst_and_the_run_catches_up_after_it() -> None:
    times = [START, START + 1, START + 2, START + 3, START + 100]
    offsets = send_offsets(times, START, speedup=10, max_rate=2)
    # 0.5 s apart at most 2 a second; the last is due at 10 s, after the burst's end.
    assert offsets.tolist() == pytest.approx([0.0, 0.5, 1.0, 1.5, 10.0])
    assert np.all(np.diff(offsets) >= 0.5 - 1e-12)


def test_a_rate_cap_leaves_a_slow_stream_alone() -> None:
    times = [START + 10.0 * k for k in range(5)]
    assert send_offsets(times, START, 1.0, max_rate=1.0).tolist() == [0, 10, 20, 30, 40]


def test_a_transaction_before_the_start_goes_at_once() -> None:
    assert send_offsets([START - 5, START], START, 2.0).tolist() == [0.0, 0.0]


def test_no_transactions_means_no_offsets() -> None:
    assert send_offsets([], START, 2.0, max_rate=5).size == 0


@pytest.mark.parametrize(
    ("speedup", "max_rate", "match"),
    [
        (0.0, None, "speedup must be a positive number, got 0.0"),
        (math.inf, None, "speedup must be a positive number"),
        (1.0, -1.0, "max_rate must be a positive number or None, got -1.0"),
    ],
)
def test_pacing_refuses_nonsense(speedup: float, max_rate: float | None, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        send_offsets([START], START, speedup, max_rate)


def test_pacing_needs_sorted_times() -> None:
    with pytest.raises(ValidationError, match="event_times must be sorted"):
        send_offsets([START + 2, START + 1], START, 1.0)


def test_labels_come_out_once_due_oldest_first() -> None:
    schedule = LabelSchedule()
    for due, request in ((30.0, "c"), (10.0, "a"), (20.0, "b"), (40.0, "d")):
        schedule.add(DueLabel(due, request, 0))
    assert schedule.take_due(5.0) == []
    assert [label.request_id for label in schedule.take_due(20.0)] == ["a", "b"]
    assert schedule.take_due(20.0) == []
    assert len(schedule) == 2
    assert [label.request_id for label in schedule.take_all()] == ["c", "d"]
    assert len(schedule) == 0


def test_labels_due_at_the_same_time_all_come_out() -> None:
    schedule = LabelSchedule()
    schedule.add(DueLabel(10.0, "b", 1))
    schedule.add(DueLabel(10.0, "a", 0))
    assert schedule.take_due(10.0) == [DueLabel(10.0, "a", 0), DueLabel(10.0, "b", 1)]


def test_percentiles_are_in_milliseconds() -> None:
    latencies = [0.001 * k for k in range(1, 101)]
    assert percentile_ms(latencies, 50) == pytest.approx(50.5)
    assert percentile_ms(latencies, 99) == pytest.approx(99.01)
    assert math.isnan(percentile_ms([], 50))
