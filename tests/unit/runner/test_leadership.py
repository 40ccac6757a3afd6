"""One leader at a time on simulated time: who leads, how fast a dead leader is replaced,
what a paused one does, and the jobs that only the leader runs."""

from __future__ import annotations

from typing import Any

import pytest

from modelyard.pipelines import InMemoryPipelineRepository
from modelyard.runner.leadership import LeaderOnly, Leadership, LeaseJob, leads_until

TTL_S, RENEW_S = 10.0, 3.0


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def emit(self, level: str, event: str, fields: dict[str, Any], ts: float | None = None) -> None:
        self.lines.append((event, fields))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def node(leases: InMemoryPipelineRepository, holder: str, clock: Clock) -> Leadership:
    return Leadership(leases, "runner:serve", holder, ttl_s=TTL_S, clock=clock, monotonic=clock)


def test_a_holder_leads_while_it_renews_and_the_others_stand_by() -> None:
    leases, clock = InMemoryPipelineRepository(), Clock()
    a, b = node(leases, "a", clock), node(leases, "b", clock)
    a.step()
    b.step()
    assert a.leading()
    assert not b.leading()
    for _ in range(10):  # 30 s of renewals, each every RENEW_S
        clock.now += RENEW_S
        a.step()
        b.step()
        assert a.leading()
        assert not b.leading()
    lease = a.current()
    assert lease is not None
    assert lease.generation == 1


def test_a_holder_that_stops_renewing_stops_leading_when_another_may_take_over() -> None:
    leases, clock = InMemoryPipelineRepository(), Clock()
    a, b = node(leases, "a", clock), node(leases, "b", clock)
    a.step()
    started = clock.now
    clock.now = started + TTL_S - 0.001  # a paused: no renewal
    b.step()
    assert a.leading()
    assert not b.leading()
    clock.now = leads_until(started, TTL_S)
    assert not a.leading()  # it steps down at the instant b may take it...
    b.step()
    assert b.leading()  # ...and b does, one generation later
    assert b.current() is not None
    assert b.current().generation == 2
    a.step()  # a wakes up: its renewal is refused, it does not take it back
    assert not a.leading()
    assert b.leading()


@pytest.mark.parametrize("killed_at", [0.0, 0.4, 1.5, 2.9, 3.0, 7.7])
def test_a_dead_leader_is_replaced_within_its_time_to_live_plus_one_renewal(
    killed_at: float,
) -> None:
    """Three nodes, each stepping every RENEW_S at its own phase; the leader dies at
    ``killed_at`` into a renewal period. Never two leaders; a new one within TTL + RENEW."""
    leases, clock = InMemoryPipelineRepository(), Clock(0.0)
    nodes = {name: node(leases, name, clock) for name in "abc"}
    phase = {"a": 0.0, "b": 1.1, "c": 2.2}
    next_step = dict(phase)
    dead: set[str] = set()
    death = 30.0 + killed_at
    replaced_at = None
    for tick in range(int(80 / 0.05)):
        clock.now = round(tick * 0.05, 2)
        if clock.now >= death and not dead:
            dead.add(next(n for n, lead in nodes.items() if lead.leading()))
        for name, lead in nodes.items():
            if name not in dead and clock.now >= next_step[name]:
                lead.step()
                next_step[name] += RENEW_S
        leaders = [n for n, lead in nodes.items() if lead.leading() and n not in dead]
        assert len(leaders) <= 1, (clock.now, leaders)
        if dead and leaders and replaced_at is None:
            replaced_at = clock.now
    assert replaced_at is not None
    assert replaced_at - death <= TTL_S + RENEW_S


def test_resigning_hands_the_lease_over_at_once() -> None:
    leases, clock = InMemoryPipelineRepository(), Clock()
    a, b = node(leases, "a", clock), node(leases, "b", clock)
    a.step()
    a.resign()
    assert not a.leading()
    b.step()
    assert b.leading()
    assert b.current().generation == 2


def test_the_lease_job_says_when_this_node_starts_and_stops_leading() -> None:
    leases, clock, log = InMemoryPipelineRepository(), Clock(), Log()
    a, b = node(leases, "a", clock), node(leases, "b", clock)
    job = LeaseJob(a, interval_s=RENEW_S)
    job.tick(log)
    job.tick(log)
    assert log.lines == [
        ("leadership_acquired", {"lease": "runner:serve", "holder": "a", "generation": 1})
    ]
    clock.now += TTL_S  # a was paused
    b.step()
    job.tick(log)
    assert log.lines[1:] == [
        ("leadership_lost", {"lease": "runner:serve", "holder": "a", "generation": 1})
    ]


class Counting:
    name, failure_event, interval_s, wait_first = "rollout-controller", "failed", 1.0, False

    def __init__(self) -> None:
        self.ticks = 0

    def tick(self, log: Any) -> None:
        self.ticks += 1


def test_a_leader_only_job_ticks_only_while_its_node_leads() -> None:
    leases, clock, log = InMemoryPipelineRepository(), Clock(), Log()
    a, b = node(leases, "a", clock), node(leases, "b", clock)
    on_a, on_b = Counting(), Counting()
    jobs = [LeaderOnly(on_a, a), LeaderOnly(on_b, b)]
    assert (jobs[0].name, jobs[0].interval_s) == ("rollout-controller", 1.0)
    a.step()
    b.step()
    for job in jobs:
        job.tick(log)
    assert (on_a.ticks, on_b.ticks) == (1, 0)
    clock.now += TTL_S  # a died
    b.step()
    for job in jobs:
        job.tick(log)
    assert (on_a.ticks, on_b.ticks) == (1, 1)
