"""One retrain of a deployment at a time: a lease in the database, held while it runs.

``held_lease`` takes the deployment's lease (``PipelineRepository.take_lease``), renews
it from a thread every third of its time to live while the retrain runs, and releases
it at the end. The lease survives its holder's crash as a row; the next taker may have
it at once when ``holder_gone`` says the holder's process no longer runs on this host,
and otherwise when it expires (a holder on another host cannot be asked).
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from modelyard.errors import ConflictError
from modelyard.pipelines.repository import Lease, PipelineRepository

__all__ = ["held_lease", "holder_gone", "holder_identity"]


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
            leases.renew_lease(name, holder, clock() + ttl_s)

    keeper = threading.Thread(target=renew, name=f"lease-{name}", daemon=True)
    keeper.start()
    try:
        yield taken
    finally:
        stop.set()
        keeper.join()
        leases.release_lease(name, holder)
