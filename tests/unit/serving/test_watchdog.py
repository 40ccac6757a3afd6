"""The supervisor's watchdog verdicts on made-up heartbeats, and the shared heartbeat."""

from __future__ import annotations

import multiprocessing

from modelyard.serving.process.watchdog import Heartbeat, Verdict, verdict


def test_a_worker_that_has_not_started_serving_is_never_judged() -> None:
    assert verdict(beat_s=0.0, hung=False, now_s=1e6, stall_limit_s=10.0) is None
    assert verdict(beat_s=0.0, hung=True, now_s=1e6, stall_limit_s=10.0) is None


def test_a_loop_that_beat_within_the_limit_is_alive() -> None:
    assert verdict(beat_s=100.0, hung=False, now_s=109.9, stall_limit_s=10.0) is None


def test_a_loop_silent_for_the_limit_is_frozen() -> None:
    assert verdict(beat_s=100.0, hung=False, now_s=110.0, stall_limit_s=10.0) is Verdict.FROZEN
    # frozen wins: a worker that cannot run its loop cannot drain either
    assert verdict(beat_s=100.0, hung=True, now_s=130.0, stall_limit_s=10.0) is Verdict.FROZEN


def test_a_beating_worker_that_reports_a_hung_call_is_hung() -> None:
    assert verdict(beat_s=100.0, hung=True, now_s=100.1, stall_limit_s=10.0) is Verdict.HUNG


def test_the_heartbeat_carries_the_beat_and_the_hang() -> None:
    heartbeat = Heartbeat(multiprocessing.get_context("spawn"))
    assert heartbeat.read() == (0.0, False)
    heartbeat.beat(123.5, hung=True)
    assert heartbeat.read() == (123.5, True)
    heartbeat.beat(124.0, hung=False)
    assert heartbeat.read() == (124.0, False)
