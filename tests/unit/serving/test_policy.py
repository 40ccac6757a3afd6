"""The batching, admission and cost rules, on made-up numbers."""

from __future__ import annotations

import pytest

from modelyard.serving.hosting.policy import (
    AdmissionPolicy,
    BatchPolicy,
    batch_take,
    best_batch_size,
    call_hung,
    estimated_wait,
    lag_average,
    overran_inline,
    updated_row_cost,
)

POLICY = BatchPolicy(max_batch_size=8, max_wait_s=0.0005)


class TestFlushDelay:
    def test_nothing_queued(self) -> None:
        assert (
            POLICY.flush_delay(queued_rows=0, waited_s=0, busy=False, last_batch_requests=5) is None
        )

    def test_busy_model_collects_until_it_is_free(self) -> None:
        assert (
            POLICY.flush_delay(queued_rows=8, waited_s=1, busy=True, last_batch_requests=5) is None
        )

    def test_full_batch_runs_now(self) -> None:
        assert POLICY.flush_delay(queued_rows=8, waited_s=0, busy=False, last_batch_requests=9) == 0

    def test_lone_request_at_low_load_does_not_wait(self) -> None:
        assert POLICY.flush_delay(queued_rows=1, waited_s=0, busy=False, last_batch_requests=1) == 0
        assert POLICY.flush_delay(queued_rows=1, waited_s=0, busy=False, last_batch_requests=0) == 0

    def test_under_concurrency_waits_at_most_max_wait(self) -> None:
        delay = POLICY.flush_delay(
            queued_rows=2, waited_s=0.0002, busy=False, last_batch_requests=4
        )
        assert delay == pytest.approx(0.0003)
        assert (
            POLICY.flush_delay(queued_rows=2, waited_s=0.001, busy=False, last_batch_requests=4)
            == 0
        )

    def test_zero_wait_never_waits(self) -> None:
        policy = BatchPolicy(max_batch_size=8, max_wait_s=0)
        assert policy.flush_delay(queued_rows=2, waited_s=0, busy=False, last_batch_requests=4) == 0


@pytest.mark.parametrize(
    ("rows", "limit", "taken"),
    [([1, 1, 1], 8, 3), ([4, 4, 1], 8, 2), ([20, 1], 8, 1), ([3, 6], 8, 1), ([], 8, 0)],
)
def test_batch_take(rows: list[int], limit: int, taken: int) -> None:
    assert batch_take(rows, limit) == taken


class TestAdmission:
    policy = AdmissionPolicy(max_queue_rows=10)

    def test_admits_within_limits(self) -> None:
        assert self.policy.refuse(rows=3, queued_rows=7, estimated_wait_s=0, budget_s=1) is None

    def test_refuses_a_full_queue(self) -> None:
        reason = self.policy.refuse(rows=4, queued_rows=7, estimated_wait_s=0, budget_s=1)
        assert reason is not None
        assert "7 rows are already waiting" in reason

    def test_empty_queue_admits_a_big_request(self) -> None:
        assert self.policy.refuse(rows=50, queued_rows=0, estimated_wait_s=0, budget_s=1) is None

    def test_refuses_what_would_miss_its_deadline(self) -> None:
        reason = self.policy.refuse(rows=1, queued_rows=1, estimated_wait_s=0.2, budget_s=0.1)
        assert reason is not None
        assert "200 ms" in reason
        assert "100 ms" in reason

    def test_the_deadline_counts_the_event_loop_lag(self) -> None:
        admitted = self.policy.refuse(rows=1, queued_rows=0, estimated_wait_s=0.05, budget_s=0.1)
        assert admitted is None
        reason = self.policy.refuse(
            rows=1, queued_rows=0, estimated_wait_s=0.05, budget_s=0.1, lag_s=0.06
        )
        assert reason is not None
        assert "110 ms" in reason

    def test_a_wait_target_refuses_a_long_wait_but_not_the_lag(self) -> None:
        policy = AdmissionPolicy(max_queue_rows=10, max_wait_s=0.001)
        assert policy.refuse(rows=1, queued_rows=0, estimated_wait_s=0.0009, budget_s=5) is None
        assert (
            policy.refuse(rows=1, queued_rows=0, estimated_wait_s=0.0, budget_s=5, lag_s=0.01)
            is None
        )
        reason = policy.refuse(rows=1, queued_rows=0, estimated_wait_s=0.0015, budget_s=5)
        assert reason is not None
        assert "about 1.5 ms, more than the 1.0 ms a request may wait" in reason


def test_row_cost_moves_towards_new_samples() -> None:
    assert updated_row_cost(0.0, 10, 0.001) == pytest.approx(0.0001)
    assert updated_row_cost(0.0001, 10, 0.002) == pytest.approx(0.0001 + 0.1 * 0.0001)
    assert updated_row_cost(0.0001, 0, 1.0) == 0.0001


def test_estimated_wait_counts_what_the_running_call_has_left() -> None:
    assert estimated_wait(queued_rows=10, running_rows=5, row_cost_s=0.001) == pytest.approx(0.015)
    assert estimated_wait(
        queued_rows=0, running_rows=2, row_cost_s=0.001, running_for_s=0.0015
    ) == pytest.approx(0.0005)
    # a call running past its estimate adds nothing, rather than a negative wait
    assert estimated_wait(queued_rows=1, running_rows=1, row_cost_s=0.001, running_for_s=0.01) == (
        pytest.approx(0.001)
    )


def test_lag_rises_at_once_and_decays() -> None:
    assert lag_average(0.001, 0.05) == 0.05
    assert lag_average(0.05, 0.0) == pytest.approx(0.035)
    assert lag_average(0.0, -0.001) == 0.0


def test_best_batch_size_is_cheapest_per_row() -> None:
    # a tree ensemble whose kernel gets slower per row past 32 rows
    measured = {1: 18e-6, 8: 38e-6, 16: 56e-6, 32: 103e-6, 64: 316e-6}
    assert best_batch_size(measured) == 32
    # fixed per-call cost only: the biggest batch wins
    assert best_batch_size({1: 10e-6, 2: 10e-6, 4: 10e-6}) == 4
    # within the tolerance the larger size wins; outside it, the cheaper one
    assert best_batch_size({16: 16e-6, 32: 34e-6}) == 32
    assert best_batch_size({16: 16e-6, 32: 40e-6}) == 16


class TestHangs:
    def test_an_inline_call_overruns_past_a_tenth_of_the_request_timeout(self) -> None:
        assert not overran_inline(0.4, request_timeout_s=5.0)
        assert not overran_inline(0.5, request_timeout_s=5.0)
        assert overran_inline(0.51, request_timeout_s=5.0)
        assert overran_inline(0.2, request_timeout_s=1.0)

    def test_a_call_hangs_once_it_has_run_for_the_limit(self) -> None:
        assert not call_hung(None, 1000.0, 60.0)  # nothing running
        assert not call_hung(950.0, 1009.9, 60.0)
        assert call_hung(950.0, 1010.0, 60.0)
