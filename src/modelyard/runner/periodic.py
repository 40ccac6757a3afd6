"""Running a job every few seconds on a thread of its own, whatever the job.

A ``Job`` is a plain object with a name, an interval and a ``tick``; ``PeriodicLoop``
runs it on a daemon thread until ``stop``, with the event log its host opened for it
(one per thread, so lines of several jobs never interleave mid-line). A tick that
raises is logged under the job's ``failure_event`` and the loop carries on: a
database hiccup must not end it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol, Self

from modelyard.errors import ModelyardError


class EventLog(Protocol):
    """Where a job reports (the server's JSON log, ``serving.telemetry.jsonlog``)."""

    def emit(
        self, level: str, event: str, fields: dict[str, Any], ts: float | None = None
    ) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class Job(Protocol):
    """One periodic job of the runner."""

    name: str  # the thread's, and the ``worker`` of its log lines
    failure_event: str  # the event a failed tick is logged as
    interval_s: float
    wait_first: bool  # first tick after one interval, not at once

    def tick(self, log: EventLog) -> None: ...


OpenLog = Callable[[str], EventLog]


class PeriodicLoop:
    """``job.tick`` every ``job.interval_s`` on a daemon thread named after it, until ``stop``."""

    def __init__(self, job: Job, open_log: OpenLog) -> None:
        self.job = job
        self._open_log = open_log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._first = threading.Event()
        self.ticks = 0  # ticks that succeeded

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name=self.job.name, daemon=True)
        self._thread.start()
        return self

    def wait_first_tick(self, timeout: float) -> bool:
        """Wait until the first tick ended (well or not); False if ``timeout`` passed first."""
        return self._first.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        job = self.job
        log = self._open_log(job.name)
        try:
            if job.wait_first and self._stop.wait(job.interval_s):
                return
            while True:
                try:
                    job.tick(log)
                    self.ticks += 1
                except Exception as error:
                    text = error.message if isinstance(error, ModelyardError) else repr(error)
                    log.emit("error", job.failure_event, {"error": text})
                log.flush()
                self._first.set()
                if self._stop.wait(job.interval_s):
                    return
        finally:
            log.close()
