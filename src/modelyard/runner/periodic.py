"""A job a server runs every few seconds on a thread of its own: the rollout controller,
the retention sweep, the monitoring pass (``background``).

Each gets its own ``Yard`` (a database connection of its own) and JSON log, opened
on its thread. A tick that raises is logged and the loop carries on: a database
hiccup must not end it.
"""

from __future__ import annotations

import threading
from typing import Self

from modelyard.config import Settings
from modelyard.errors import ModelyardError
from modelyard.serving.telemetry.jsonlog import JsonLog
from modelyard.yard import Yard


class PeriodicLoop:
    """``tick`` every ``interval_s`` (first at once, or after one interval with
    ``wait_first``) on a daemon thread named ``name``, until ``stop``."""

    name = "periodic"  # the thread's, and the ``worker`` of its log lines
    failure_event = "periodic_failed"

    def __init__(self, settings: Settings, interval_s: float, *, wait_first: bool = False) -> None:
        self._settings = settings
        self._interval_s = interval_s
        self._wait_first = wait_first
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0

    def prepare(self, yard: Yard) -> None:
        """Once, on the loop's thread, before the first tick."""

    def tick(self, yard: Yard, log: JsonLog) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        log = JsonLog(self._settings.resolved_log_path, worker=self.name)
        try:
            with Yard(self._settings) as yard:
                self.prepare(yard)
                if self._wait_first and self._stop.wait(self._interval_s):
                    return
                while True:
                    try:
                        self.tick(yard, log)
                        self.ticks += 1
                    except Exception as error:
                        text = error.message if isinstance(error, ModelyardError) else repr(error)
                        log.emit("error", self.failure_event, {"error": text})
                    log.flush()
                    if self._stop.wait(self._interval_s):
                        return
        finally:
            log.close()
