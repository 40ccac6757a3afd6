"""The runner's composition root: its stores, built once, and its jobs on threads.

``RunnerStores`` opens the metadata database once and builds every port the jobs
use: the deployments (routing), the inference log and monitoring's tables, tracking and
the registry, the feature definitions and the online store, the retraining plans. ``start_runner``
starts one thread per job (``PeriodicLoop``): the rollout controller and the trimming
of the online store's events always; with inference logging, the retention sweep
and, unless ``monitoring.check_interval_s`` is 0, the monitoring pass; the JSON log's
retention when the server hands in its sweep; unless
``features.materialize_interval_s`` is 0, the materialization of the views; with
``features.stream_url``, a consumer per stream; with ``runner.platform_sink``, the push of
kserve deployments' manifests after each change (``platform_sync``). A server hosts
exactly one runner, in the process that answers no requests (its supervisor), or
beside its only worker; ``Runner.stop`` stops the threads and closes the database.

Several servers on one database (docs/scaling.md) each host a runner, and one of them
leads (``runner.leadership``): the jobs that decide for every node (the rollout
controller, the platform push, the retention sweep, the monitoring pass; the feature store's
materialization and trimming when its online store is shared, i.e. Redis) run only
in the leader, and their ports write through a database fenced by its lease. The
other jobs serve their own node: its JSON log's files, its own SQLite online store,
its share of a Redis stream's consumer group.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from modelyard.config import Settings
from modelyard.errors import ConfigurationError, ModelyardError
from modelyard.features.definitions import StreamSource
from modelyard.features.feature_store import FeatureStore
from modelyard.features.online import open_online_store
from modelyard.features.registry import FeatureRegistry
from modelyard.features.sql import SqlDefinitionRepository
from modelyard.features.streams import StreamConsumer
from modelyard.monitoring.inference_log.policy import default_policy
from modelyard.monitoring.inference_log.sql import SqlInferenceLogRepository
from modelyard.monitoring.sql import SqlMonitoringRepository
from modelyard.pipelines.leases import holder_gone, holder_identity
from modelyard.pipelines.repository import Lease
from modelyard.pipelines.sql import SqlPipelineRepository, lease_fence
from modelyard.platforms import open_sink, render_target
from modelyard.registry import Registry
from modelyard.registry.sql import SqlRegistryRepository
from modelyard.routing import DeploymentStore, RolloutController
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.runner.features import MaterializeJob, StreamJob, TrimEventsJob
from modelyard.runner.leadership import SERVE_LEASE, LeaderOnly, Leadership, LeaseJob
from modelyard.runner.monitoring import MonitorJob
from modelyard.runner.periodic import Job, OpenLog, PeriodicLoop
from modelyard.runner.platform_sync import PlatformSyncJob
from modelyard.runner.retention import FileRetentionJob, FileSweep, RetentionJob
from modelyard.runner.rollouts import InferenceLogMetrics, RolloutJob
from modelyard.runner.served import served_model
from modelyard.store.artifacts import is_remote_url, open_artifact_store
from modelyard.store.database import Database
from modelyard.tracking import Tracker
from modelyard.tracking.sql import SqlRunRepository


class RunnerStores:
    """Every port the runner's jobs read and write, over one database (``close`` it).

    With ``lease``, ``leadership`` is this process's claim on that lease, and the ports
    decisions are written through (deployments and their events, the registry, the
    inference log, monitoring, the retraining plans) use a database fenced by it: once
    another process took the lease over, their writes are refused (``LeaseLostError``).
    Tracking and the feature definitions are not fenced.
    """

    def __init__(self, settings: Settings, *, lease: str | None = None) -> None:
        self.db = Database(settings.resolved_database_url)
        self.leadership = None if lease is None else leadership_of(settings, self.db, lease)
        decisions = (
            self.db
            if self.leadership is None
            else self.db.fenced(lease_fence(self.leadership.name, self.leadership.current))
        )
        self.artifacts = open_artifact_store(
            settings.resolved_artifacts_url, cache_dir=settings.resolved_artifacts_cache
        )
        self.tracker = Tracker(SqlRunRepository(self.db), self.artifacts, user=settings.user)
        self.registry = Registry(
            SqlRegistryRepository(decisions), self.artifacts, runs=self.tracker, user=settings.user
        )
        self.routing = SqlDeploymentRepository(decisions)
        self.deployments = DeploymentStore(self.routing, self.registry)
        self.inference_log = SqlInferenceLogRepository(decisions)
        self.monitoring = SqlMonitoringRepository(decisions)
        self.features = FeatureRegistry(SqlDefinitionRepository(self.db))
        self.online = open_online_store(settings)
        self.feature_store = FeatureStore(self.features, self.online, settings)
        self.pipelines = SqlPipelineRepository(decisions)

    def close(self) -> None:
        self.online.close()
        self.db.dispose()


def leadership_of(settings: Settings, db: Database, lease: str) -> Leadership:
    """This process's claim on ``lease`` in ``db``, timed by ``settings.runner``."""

    def alive(lease: Lease) -> bool:
        return False

    return Leadership(
        SqlPipelineRepository(db),
        lease,
        holder_identity(),
        ttl_s=settings.runner.lease_ttl_s,
        # On SQLite every holder runs on this machine, so a dead pid proves it gone and a
        # server restarted after a crash leads at once; on PostgreSQL a holder may be
        # another machine, or a container whose pids mean nothing here: only the
        # lease's expiry says it is gone.
        stale=holder_gone if db.is_sqlite else alive,
    )


def runner_jobs(
    settings: Settings,
    stores: RunnerStores,
    *,
    publish_to: Path | None = None,
    clock: Callable[[], float] = time.time,
    trusted: bool = False,
    file_sweep: FileSweep | None = None,
) -> list[Job]:
    """The jobs a server runs (see the module docstring); ``trusted``: whether the rollout
    controller may load pickle-based versions to compare their decisions (as the server
    was told); ``file_sweep``: the retention of the server's JSON log, beside the
    inference log's."""
    metrics = InferenceLogMetrics(
        stores.inference_log, lambda ref: stores.registry.load(ref, trusted=trusted).predictor
    )
    leadership = stores.leadership

    def lead(job: Job) -> Job:
        return job if leadership is None else LeaderOnly(job, leadership)

    controller = RolloutController(stores.deployments, metrics, clock=clock)
    jobs: list[Job] = [lead(RolloutJob(controller, clock=clock))]
    if settings.runner.platform_sink is not None:
        sink = open_sink(settings.runner.platform_sink)
        # the pods read versions from this server's store when they can reach it
        store = settings.artifacts_url if is_remote_url(settings.artifacts_url or "") else None
        render = functools.partial(render_target, artifacts_url=store)
        jobs.append(lead(PlatformSyncJob(stores.deployments, stores.routing, render, sink)))
    monitoring = settings.monitoring
    if monitoring.log_inferences:
        jobs.append(
            lead(
                RetentionJob(
                    stores.deployments.list,
                    stores.inference_log,
                    default_policy(monitoring),
                    interval_s=monitoring.retention_sweep_interval_s,
                    clock=clock,
                )
            )
        )
        if monitoring.check_interval_s > 0:
            jobs.append(lead(monitor_job(settings, stores, publish_to=publish_to, clock=clock)))
    if file_sweep is not None:
        jobs.append(
            FileRetentionJob(
                file_sweep, interval_s=monitoring.retention_sweep_interval_s, clock=clock
            )
        )
    features = settings.features
    # A SQLite online store is this node's own file: each node keeps its own up to date.
    shared = lead if features.online_store != "sqlite" else (lambda job: job)
    jobs.append(
        shared(
            TrimEventsJob(
                stores.features,
                stores.online,
                allowed_lateness_s=features.allowed_lateness_s,
                clock=clock,
            )
        )
    )
    if features.materialize_interval_s > 0:
        jobs.append(
            shared(MaterializeJob(stores.feature_store, interval_s=features.materialize_interval_s))
        )
    jobs += stream_jobs(settings, stores)
    return jobs


def stream_jobs(settings: Settings, stores: RunnerStores) -> list[Job]:
    """One consumer per stream some view reads, when ``features.stream_url`` names a Redis
    server: the Redis stream of the same name feeds it."""
    features = settings.features
    if features.stream_url is None:
        return []
    try:
        import redis  # the 'redis' extra, needed only with a stream URL
    except ImportError as error:
        raise ConfigurationError(
            "setting 'features.stream_url' needs Redis's client: pip install 'modelyard[redis]'"
        ) from error
    client = redis.Redis.from_url(features.stream_url, socket_timeout=10)
    views = stores.features.definitions().views
    streams = sorted({v.source.name for v in views if isinstance(v.source, StreamSource)})
    return [
        StreamJob(
            StreamConsumer(
                client,
                key=stream,
                group=features.stream_group,
                consumer=f"{socket.gethostname()}-{os.getpid()}",
                stream=stream,
                views=views,
                store=stores.online,
                offline_dir=settings.resolved_offline_dir,
                allowed_lateness_s=features.allowed_lateness_s,
            )
        )
        for stream in streams
    ]


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
        """Stop the jobs, hand the lease over (the next node leads at once), close."""
        for loop in self.loops:
            loop.stop()
        if self.stores.leadership is not None:
            with contextlib.suppress(ModelyardError):  # unreachable: it lapses on its own
                self.stores.leadership.resign()
        self.stores.close()


def start_runner(
    settings: Settings,
    *,
    open_log: OpenLog,
    publish_to: Path | None = None,
    trusted: bool = False,
    file_sweep: FileSweep | None = None,
) -> Runner:
    """Build the runner's stores once and start its jobs, each logging to ``open_log(name)``;
    the monitoring pass writes its Prometheus text to ``publish_to``."""
    stores = RunnerStores(settings, lease=SERVE_LEASE)
    loops = []
    if stores.leadership is not None:
        renew_s = settings.runner.lease_renew_s
        lease = PeriodicLoop(LeaseJob(stores.leadership, interval_s=renew_s), open_log).start()
        # Whether this node leads is known before the jobs' first ticks (a lone server
        # sweeps at start, as it always did).
        lease.wait_first_tick(settings.runner.lease_ttl_s)
        loops.append(lease)
    jobs = runner_jobs(
        settings, stores, publish_to=publish_to, trusted=trusted, file_sweep=file_sweep
    )
    return Runner(stores, loops + [PeriodicLoop(job, open_log).start() for job in jobs])
