"""The runner's composition root: its stores, built once, and its jobs on threads.

``RunnerStores`` opens the metadata database once and builds every port the jobs
use: the deployments (routing), the inference log and monitoring's tables, and the
registry's catalog. ``start_runner`` starts one thread per job (``PeriodicLoop``):
the rollout controller always; with inference logging, the retention sweep and,
unless ``monitoring.check_interval_s`` is 0, the monitoring pass. A server hosts
exactly one runner, in the process that answers no requests (its supervisor), or
beside its only worker; ``Runner.stop`` stops the threads and closes the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from modelyard.config import Settings
from modelyard.monitoring.inference_log.policy import default_policy
from modelyard.monitoring.inference_log.sql import SqlInferenceLogRepository
from modelyard.monitoring.sql import SqlMonitoringRepository
from modelyard.registry import Registry
from modelyard.registry.sql import SqlRegistryRepository
from modelyard.routing import DeploymentStore, RolloutController
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.runner.monitoring import MonitorJob
from modelyard.runner.periodic import Job, OpenLog, PeriodicLoop
from modelyard.runner.retention import RetentionJob
from modelyard.runner.rollouts import InferenceLogMetrics, RolloutJob
from modelyard.runner.served import served_model
from modelyard.store.artifacts import open_artifact_store
from modelyard.store.database import Database


class RunnerStores:
    """Every port the runner's jobs read and write, over one database (``close`` it)."""

    def __init__(self, settings: Settings) -> None:
        self.db = Database(settings.resolved_database_url)
        artifacts = open_artifact_store(settings.resolved_artifacts_url)
        self.registry = Registry(SqlRegistryRepository(self.db), artifacts, user=settings.user)
        self.deployments = DeploymentStore(SqlDeploymentRepository(self.db), self.registry)
        self.inference_log = SqlInferenceLogRepository(self.db)
        self.monitoring = SqlMonitoringRepository(self.db)

    def close(self) -> None:
        self.db.dispose()


def runner_jobs(
    settings: Settings,
    stores: RunnerStores,
    *,
    publish_to: Path | None = None,
    clock: Callable[[], float] = time.time,
) -> list[Job]:
    """The jobs a server runs (see the module docstring)."""
    metrics = InferenceLogMetrics(stores.inference_log)
    controller = RolloutController(stores.deployments, metrics, clock=clock)
    jobs: list[Job] = [RolloutJob(controller, clock=clock)]
    monitoring = settings.monitoring
    if monitoring.log_inferences:
        jobs.append(
            RetentionJob(
                stores.deployments.list,
                stores.inference_log,
                default_policy(monitoring),
                interval_s=monitoring.retention_sweep_interval_s,
                clock=clock,
            )
        )
        if monitoring.check_interval_s > 0:
            jobs.append(monitor_job(settings, stores, publish_to=publish_to, clock=clock))
    return jobs


def monitor_job(
    settings: Settings,
    stores: RunnerStores,
    *,
    publish_to: Path | None = None,
    clock: Callable[[], float] = time.time,
) -> MonitorJob:
    """The monitoring pass over ``stores``."""
    return MonitorJob(
        settings.monitoring,
        inference_log=stores.inference_log,
        repository=stores.monitoring,
        catalog=stores.registry,
        model_of=served_model(stores.deployments, stores.inference_log),
        publish_to=publish_to,
        clock=clock,
    )


class Runner:
    """The running jobs of one process, and the stores they share."""

    def __init__(self, stores: RunnerStores, loops: list[PeriodicLoop]) -> None:
        self.stores = stores
        self.loops = loops

    def stop(self) -> None:
        for loop in self.loops:
            loop.stop()
        self.stores.close()


def start_runner(
    settings: Settings, *, open_log: OpenLog, publish_to: Path | None = None
) -> Runner:
    """Build the runner's stores once and start its jobs, each logging to ``open_log(name)``;
    the monitoring pass writes its Prometheus text to ``publish_to``."""
    stores = RunnerStores(settings)
    jobs = runner_jobs(settings, stores, publish_to=publish_to)
    return Runner(stores, [PeriodicLoop(job, open_log).start() for job in jobs])
