"""How the supervisor tells a worker that is stuck from one that is busy.

A model call can hang (``hosting.batcher``). On a thread, its requests are answered
504 at their deadline and the version goes on with a fresh thread, but the stuck
thread keeps its memory and whatever it holds: past ``model_hang_limit_s`` the worker
says it is unhealthy, and the supervisor starts a replacement and stops it gracefully
(its in-flight requests are answered first). Inline, on the event loop, nothing in the
worker runs any more, not even its signal handling: the supervisor notices that the
loop stopped beating for ``loop_stall_limit_s`` and kills the worker outright after
starting its replacement (the requests it held are lost to their connections; new
connections wait in the socket's queue for the new worker).

Each worker gets a ``Heartbeat``: two numbers in shared memory that its event loop
writes every tick (uvicorn's 0.1 s) and the supervisor reads. Both processes read
``time.monotonic``, one clock system-wide. ``verdict`` decides on plain numbers.
"""

from __future__ import annotations

import enum
from multiprocessing.context import SpawnContext
from typing import Any


class Verdict(enum.Enum):
    """What the supervisor does about a worker."""

    FROZEN = "frozen"  # its event loop stopped: start another, kill this one
    HUNG = "hung"  # a model call is stuck on a thread: start another, stop this one


def verdict(*, beat_s: float, hung: bool, now_s: float, stall_limit_s: float) -> Verdict | None:
    """The supervisor's decision on one worker whose loop last beat at ``beat_s``
    (0: it has not started serving yet, so loading models for minutes is no stall)
    and that reports ``hung``; None: leave it alone."""
    if beat_s <= 0.0:
        return None
    if now_s - beat_s >= stall_limit_s:
        return Verdict.FROZEN
    return Verdict.HUNG if hung else None


class Heartbeat:
    """The shared memory one worker beats into: [last beat, 1.0 when a call is hung]."""

    def __init__(self, context: SpawnContext) -> None:
        self._values: Any = context.RawArray("d", 2)

    def beat(self, now_s: float, *, hung: bool) -> None:
        self._values[1] = 1.0 if hung else 0.0
        self._values[0] = now_s

    def read(self) -> tuple[float, bool]:
        """The last beat (0.0 before the first) and whether the worker reports a hung call."""
        return float(self._values[0]), self._values[1] > 0.0
