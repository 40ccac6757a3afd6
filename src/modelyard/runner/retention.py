"""The inference log's retention as a runner job: every
``monitoring.retention_sweep_interval_s``, delete what each deployment's time to live
no longer covers.

The deletes are short transactions (``storage.purge``); each deployment's time to
live is its own ``log_ttl_days`` where it sets one, else ``monitoring.log_ttl_days``
(0: keep forever). ``FileRetentionJob`` applies the same time to live to the files of
the server's JSON log, through a sweep the server hands in (the runner does not know
serving's files).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from modelyard.monitoring.inference_log.policy import LogPolicy, deployment_policy
from modelyard.monitoring.inference_log.repository import InferenceLogRepository
from modelyard.monitoring.inference_log.storage import retention_sweep
from modelyard.routing import Deployment
from modelyard.runner.periodic import EventLog


def sweep_once(
    deployments: Iterable[Deployment],
    inference_log: InferenceLogRepository,
    default: LogPolicy,
    now: float,
) -> dict[str, int]:
    """Apply every deployment's time to live at ``now``; records deleted per deployment."""
    policies = {
        d.name: deployment_policy(d.config.log_sample_rate, d.config.log_ttl_days, default)
        for d in deployments
    }
    return retention_sweep(inference_log, now, policies=policies, default=default)


class RetentionJob:
    """``sweep_once`` at start and then every ``interval_s``."""

    name = "log-retention"
    failure_event = "retention_sweep_failed"
    wait_first = False

    def __init__(
        self,
        deployments: Callable[[], Iterable[Deployment]],
        inference_log: InferenceLogRepository,
        default: LogPolicy,
        *,
        interval_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._deployments = deployments
        self._inference_log = inference_log
        self._default = default
        self.interval_s = interval_s
        self._clock = clock

    def tick(self, log: EventLog) -> None:
        deleted = sweep_once(self._deployments(), self._inference_log, self._default, self._clock())
        if any(deleted.values()):
            log.emit("info", "retention_sweep", {"deleted": deleted})


FileSweep = Callable[[float], Mapping[str, Any]]


class FileRetentionJob:
    """A file log's retention beside the inference log's (the server's JSON log: rotation
    by age, expiry after ``monitoring.log_ttl_days``, its request-id index), every
    ``interval_s``; ``sweep(now)`` is given by the process that owns those files."""

    name = "file-retention"
    failure_event = "file_retention_failed"
    wait_first = False

    def __init__(
        self, sweep: FileSweep, *, interval_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._sweep = sweep
        self.interval_s = interval_s
        self._clock = clock

    def tick(self, log: EventLog) -> None:
        done = self._sweep(self._clock())
        if done.get("rotated") or done.get("deleted"):
            log.emit("info", "log_files_swept", dict(done))
