"""Leases in the database: who may take one (pure), and one retrain of a deployment at a time.

``lease_free`` and ``taken_lease`` are the rules every ``PipelineRepository`` applies
inside its atomic take: a name is free when nobody holds it, when its lease expired,
or when its holder is known to be gone; each takeover of a row bumps its generation.
The runner's leadership (``runner.leadership``) is a lease under these same rules.

``held_lease`` takes the deployment's lease (``PipelineRepository.take_lease``), renews
it from a thread every third of its time to live while the retrain runs, and releases
it at the end. The lease survives its holder's crash as a row; the next taker may have
it at once when ``holder_gone`` says the holder's process no longer runs on this host,
and otherwise when it expires (a holder on another host cannot be asked).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from modelyard.errors import ConflictError, ModelyardError
from modelyard.pipelines.repository import Lease, PipelineRepository

__all__ = ["held_lease", "holder_gone", "holder_identity", "lease_free", "taken_lease"]


def lease_free(current: Lease | None, now: float, holder_gone: bool) -> bool:
    """Whether a taker may have a name whose row is ``current`` at ``now``: no row, a
    lease that expired (``expires_at`` is the first instant it is free), or a holder
    known to be gone."""
    return current is None or current.expires_at <= now or holder_gone


def taken_lease(current: Lease | None, name: str, holder: str, now: float, ttl_s: float) -> Lease:
    """The lease ``holder`` gets for ``name`` at ``now`` when it takes the row ``current``:
    until ``now + ttl_s``, one generation past the row's (1 for a new row), so a
    fencing check tells every term of the name from the others."""
    generation = 1 if current is None else current.generation + 1
    return Lease(name, holder, now, now + ttl_s, generation)


def holder_identity() -> str:
    """``host:pid:token``: who holds a lease, precise enough to tell when it is gone."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_gone(lease: Lease) -> bool:
    """Whether ``lease``'s holder was a process of this host that no longer runs."""
    host, _, rest = lease.holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


@contextmanager
def held_lease(
    leases: PipelineRepository,
    name: str,
    holder: str,
    clock: Callable[[], float],
    ttl_s: float,
) -> Iterator[Lease]:
    """Hold ``name`` for the body (ConflictError naming the holder if someone has it)."""
    taken = leases.take_lease(name, holder, clock(), ttl_s, holder_gone)
    if taken is None:
        current = leases.lease(name)
        who = "" if current is None else f" (held by {current.holder})"
        raise ConflictError(f"a retrain of {name!r} is already running{who}")
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl_s / 3):
            try:
                leases.renew_lease(name, holder, clock() + ttl_s)
            except ModelyardError:  # unreachable, or fenced off: the body's writes will say
                continue

    keeper = threading.Thread(target=renew, name=f"lease-{name}", daemon=True)
    keeper.start()
    try:
        yield taken
    finally:
        stop.set()
        keeper.join()
        with contextlib.suppress(ModelyardError):  # not released: it expires on its own
            leases.release_lease(name, holder)
