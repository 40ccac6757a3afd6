"""Which node leads the periodic decisions: a lease in the database, renewed by its holder.

Several ``modelyard serve`` nodes on one database each host a runner, but a decision
for everyone (a rollout step, a monitoring pass and its alerts, the retention sweep,
a retraining check) must be taken once: only the node holding the lease
``runner:serve`` (``runner:retrain-check`` among ``modelyard worker`` processes) runs
those jobs (``LeaderOnly``). The lease is a row of ``retrain_leases``, taken and
renewed through the pipelines context's ``PipelineRepository`` under the same rules
as a retrain's lease (``pipelines.leases.lease_free``, ``taken_lease``).

``LeaseJob`` calls ``Leadership.step`` every ``runner.lease_renew_s``: the holder
renews its lease until ``now + lease_ttl_s``; every other node tries to take it, and
gets it once it expired, so a dead holder is replaced within ``lease_ttl_s +
lease_renew_s``. A holder leads until ``lease_ttl_s`` after the start of its last
renewal that succeeded, on its own monotonic clock: a leader that cannot reach the
database steps down about when the others may take over.

That timing is not what keeps decisions single: a paused or cut-off leader may still
believe it leads. Its decision ports write through a fenced database
(``pipelines.sql.lease_fence``): each write transaction checks that the row still
names this holder at this generation, so a write after a takeover is refused
(``LeaseLostError``) and writes nothing.

Written here rather than taken from a library: ``tooz``'s PostgreSQL driver offers
locks but not its leader election (its compatibility table), ``pals`` and the like are
advisory locks, held by one open session: no fencing token, and a holder cut off from
the database keeps acting until its TCP connection is noticed dead. A lease row renewed
by its holder and checked in the decisions' own transactions (the design of Go's
``pg_lease``, ``VerifyLeaseHeld``) needs one table, which already existed for retrains.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from modelyard.pipelines.repository import Lease, PipelineRepository
from modelyard.runner.periodic import EventLog, Job

__all__ = [
    "RETRAIN_CHECK_LEASE",
    "SERVE_LEASE",
    "LeaderOnly",
    "LeaseJob",
    "Leadership",
    "leads_until",
]

SERVE_LEASE = "runner:serve"
RETRAIN_CHECK_LEASE = "runner:retrain-check"


def leads_until(renewal_started: float, ttl_s: float) -> float:
    """When a holder stops leading (its monotonic clock), given when its last renewal that
    succeeded began: the row it wrote expires ``ttl_s`` after a wall-clock reading taken
    no earlier, so no other node may take over before then (clocks agreeing)."""
    return renewal_started + ttl_s


class Leadership:
    """This process's hold on the lease ``name``: ``step`` to take or renew it, ``current``
    to know whether it leads."""

    def __init__(
        self,
        leases: PipelineRepository,
        name: str,
        holder: str,
        *,
        ttl_s: float,
        stale: Callable[[Lease], bool] = lambda lease: False,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._leases = leases
        self.name = name
        self.holder = holder
        self._ttl_s = ttl_s
        self._stale = stale
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._term: Lease | None = None  # the lease last taken, until a renewal fails
        self._until = float("-inf")  # leads until then, on the monotonic clock

    def step(self) -> None:
        """Renew the lease if this process has a term, else try to take it. A renewal the
        database refuses (another holder took the row) ends the term; one that raises
        (the database is unreachable) leaves it to lapse at ``leads_until``."""
        started, now = self._monotonic(), self._clock()
        with self._lock:
            term = self._term
        if term is not None:
            renewed = self._leases.renew_lease(self.name, self.holder, now + self._ttl_s)
            with self._lock:
                if renewed:
                    self._until = leads_until(started, self._ttl_s)
                else:
                    self._term, self._until = None, float("-inf")
            if renewed:
                return
        taken = self._leases.take_lease(self.name, self.holder, now, self._ttl_s, self._stale)
        if taken is not None:
            with self._lock:
                self._term, self._until = taken, leads_until(started, self._ttl_s)

    def current(self) -> Lease | None:
        """The lease while this process leads; None when it does not (the fence's view)."""
        with self._lock:
            if self._term is not None and self._monotonic() < self._until:
                return self._term
            return None

    def leading(self) -> bool:
        return self.current() is not None

    def resign(self) -> None:
        """Stop leading and let the next node take over at once: the lease is expired, not
        deleted, so its next holder's generation is still one higher."""
        with self._lock:
            term, self._term, self._until = self._term, None, float("-inf")
        if term is not None:
            self._leases.renew_lease(self.name, self.holder, self._clock())


class LeaseJob:
    """``Leadership.step`` every ``interval_s``; a change of leader is a log line
    (``leadership_acquired``, ``leadership_lost``) with the lease's generation."""

    name = "runner-lease"
    failure_event = "leadership_step_failed"
    wait_first = False

    def __init__(self, leadership: Leadership, *, interval_s: float) -> None:
        self._leadership = leadership
        self.interval_s = interval_s
        self._held: Lease | None = None

    def tick(self, log: EventLog) -> None:
        try:
            self._leadership.step()
        finally:  # a failed step may still have lapsed the lease: say so
            self._report(log)

    def _report(self, log: EventLog) -> None:
        held, before = self._leadership.current(), self._held
        if held == before:
            return
        fields = {"lease": self._leadership.name, "holder": self._leadership.holder}
        if before is not None and (held is None or held.generation != before.generation):
            log.emit("warning", "leadership_lost", {**fields, "generation": before.generation})
        if held is not None and (before is None or held.generation != before.generation):
            log.emit("info", "leadership_acquired", {**fields, "generation": held.generation})
        self._held = held


class LeaderOnly:
    """``job`` ticked only while ``leadership`` leads (its name, interval and log events)."""

    def __init__(self, job: Job, leadership: Leadership) -> None:
        self.job = job
        self._leadership = leadership
        self.name = job.name
        self.failure_event = job.failure_event
        self.interval_s = job.interval_s
        self.wait_first = job.wait_first

    def tick(self, log: EventLog) -> None:
        if self._leadership.leading():
            self.job.tick(log)
