"""The inference log's retention: every ``monitoring.retention_sweep_interval_s``, delete
what each deployment's time to live no longer covers.

One per server, on a thread of the process that answers no requests (beside the
rollout controller): the deletes are short transactions (``storage.purge``),
each deployment's time to live is its own ``log_ttl_days`` where it sets one,
else ``monitoring.log_ttl_days`` (0: keep forever).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from modelyard.config import Settings
from modelyard.monitoring.inference_log.sql import SqlInferenceLogRepository
from modelyard.monitoring.inference_log.storage import retention_sweep
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.runner.periodic import PeriodicLoop
from modelyard.serving.recording import default_log_policy, deployment_log_policy
from modelyard.serving.telemetry.jsonlog import JsonLog
from modelyard.yard import Yard


def sweep_once(yard: Yard, settings: Settings, now: float) -> dict[str, int]:
    """Apply every deployment's time to live at ``now``; records deleted per deployment."""
    default = default_log_policy(settings)
    policies = {
        deployment.name: deployment_log_policy(deployment.config, default)
        for deployment in SqlDeploymentRepository(yard.db).list()
    }
    log = SqlInferenceLogRepository(yard.db)
    return retention_sweep(log, now, policies=policies, default=default)


class RetentionLoop(PeriodicLoop):
    """``sweep_once`` at start and then every ``retention_sweep_interval_s`` until ``stop``."""

    name = "log-retention"
    failure_event = "retention_sweep_failed"

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(settings, settings.monitoring.retention_sweep_interval_s)
        self._clock = clock

    def tick(self, yard: Yard, log: JsonLog) -> None:
        deleted = sweep_once(yard, self._settings, self._clock())
        if any(deleted.values()):
            log.emit("info", "retention_sweep", {"deleted": deleted})
