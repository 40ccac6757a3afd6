"""The inference log's retention: every ``monitoring.retention_sweep_interval_s``, delete
what each deployment's time to live no longer covers.

One per server, on a thread of the process that answers no requests (beside the
rollout controller): the deletes are short transactions (``log_store.purge``),
each deployment's time to live is its own ``log_ttl_days`` where it sets one,
else ``monitoring.log_ttl_days`` (0: keep forever).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from modelyard.config import Settings
from modelyard.errors import ModelyardError
from modelyard.monitoring.log_store import retention_sweep
from modelyard.routing import DeploymentStore
from modelyard.serving.app import log_path
from modelyard.serving.inference_logging import default_log_policy, deployment_log_policy
from modelyard.serving.jsonlog import JsonLog
from modelyard.yard import Yard


def sweep_once(yard: Yard, settings: Settings, now: float) -> dict[str, int]:
    """Apply every deployment's time to live at ``now``; records deleted per deployment."""
    default = default_log_policy(settings)
    policies = {
        deployment.name: deployment_log_policy(deployment.config, default)
        for deployment in DeploymentStore(yard.db, yard.registry).list()
    }
    return retention_sweep(yard.db, now, policies=policies, default=default)


class RetentionLoop:
    """``sweep_once`` at start and then every ``interval_s`` on a daemon thread until ``stop``."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._interval_s = settings.monitoring.retention_sweep_interval_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sweeps = 0

    def start(self) -> RetentionLoop:
        self._thread = threading.Thread(target=self._run, name="log-retention", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        log = JsonLog(log_path(self._settings), worker="log-retention")
        try:
            with Yard(self._settings) as yard:
                while not self._stop.is_set():
                    try:
                        deleted = sweep_once(yard, self._settings, self._clock())
                    except Exception as error:  # a database hiccup: retried at the next sweep
                        text = error.message if isinstance(error, ModelyardError) else repr(error)
                        log.emit("error", "retention_sweep_failed", {"error": text})
                    else:
                        self.sweeps += 1
                        if any(deleted.values()):
                            log.emit("info", "retention_sweep", {"deleted": deleted})
                    log.flush()
                    self._stop.wait(self._interval_s)
        finally:
            log.close()
