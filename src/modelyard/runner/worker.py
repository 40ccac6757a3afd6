"""``modelyard worker``: the long-running process that runs retraining plans.

A process of its own rather than a mode of ``modelyard serve``: a retrain is minutes
of full-core training, and the serving workers' latency must not pay for it; it can
also run on another machine against the same database and artifact store.

APScheduler (``BackgroundScheduler``) runs its two jobs: the retraining check every
``retraining.check_interval_s`` (cron times are computed by APScheduler's
``CronTrigger`` inside the check, from the plan's last check kept in the database, so
a schedule missed while no worker ran fires once when one is back; APScheduler's own
persistent job stores would pickle the jobs) and a heartbeat. ``/metrics`` (Prometheus)
shows the heartbeat, the checks and the retrains by outcome. ``stop`` pauses the
scheduler, waits up to ``retraining.shutdown_grace_s`` for a running check, then shuts
down; a retrain cut short is taken over by the next worker (``RetrainingLoop``).

Several workers on one database (on several machines) check the triggers one at a
time: a third job keeps the lease ``runner:retrain-check`` (``runner.leadership``), and
only its holder checks; what the check writes goes through a database fenced by the
lease. The others stand by and take over within ``runner.lease_ttl_s +
runner.lease_renew_s`` when the holder dies.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import Counter, Gauge, start_http_server
from prometheus_client.registry import CollectorRegistry

from modelyard.config import Settings
from modelyard.errors import ModelyardError
from modelyard.runner.host import RunnerStores
from modelyard.runner.leadership import RETRAIN_CHECK_LEASE, LeaseJob
from modelyard.runner.periodic import OpenLog
from modelyard.runner.retraining import RetrainCheckJob, retraining_loop

__all__ = ["RetrainingWorker"]

# A check still running when its next one is due is skipped on purpose (one at a time);
# APScheduler would warn about each skip.
logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)


class RetrainingWorker:
    """The scheduler, its jobs, the stores they use and the metrics endpoint."""

    def __init__(self, settings: Settings, *, open_log: OpenLog, trusted: bool = False) -> None:
        self._settings = settings.retraining
        self._log = open_log("retrain-worker")
        self._lease_log = open_log("retrain-worker-lease")  # its own thread, its own log
        self._stores = RunnerStores(settings, lease=RETRAIN_CHECK_LEASE)
        self._lease_s = settings.runner.lease_renew_s
        assert self._stores.leadership is not None
        self._leadership = self._stores.leadership
        self._lease = LeaseJob(self._leadership, interval_s=self._lease_s)
        self._job = RetrainCheckJob(
            retraining_loop(self._stores, trusted=trusted), self._settings.check_interval_s
        )
        self.metrics = CollectorRegistry(auto_describe=True)
        self._heartbeat = Gauge(
            "modelyard_worker_heartbeat_timestamp_seconds",
            "When the retraining worker last beat (UNIX time)",
            registry=self.metrics,
        )
        self._busy = Gauge(
            "modelyard_worker_busy", "1 while a retraining check runs", registry=self.metrics
        )
        self._checks = Counter(
            "modelyard_retrain_checks", "Retraining checks run", ["outcome"], registry=self.metrics
        )
        self._retrains = Counter(
            "modelyard_retrains",
            "Retrains started by the worker, by how they ended",
            ["deployment", "status"],
            registry=self.metrics,
        )
        self._idle = threading.Event()
        self._idle.set()
        self._scheduler = BackgroundScheduler(
            timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1}
        )
        self.port: int | None = None
        self._server: Any = None

    def start(self) -> None:
        """Serve ``/metrics`` and start the jobs (the first check at once)."""
        retraining = self._settings
        self._server, _ = start_http_server(
            retraining.metrics_port, addr=retraining.metrics_host, registry=self.metrics
        )
        self.port = self._server.server_port
        self._keep_lease()  # whether this worker checks is known before its first check
        now = datetime.now(UTC)
        self._scheduler.add_job(
            self._keep_lease,
            IntervalTrigger(seconds=self._lease_s),
            next_run_time=now + timedelta(seconds=self._lease_s),
        )
        self._scheduler.add_job(
            self._beat, IntervalTrigger(seconds=retraining.heartbeat_interval_s), next_run_time=now
        )
        self._scheduler.add_job(
            self._check, IntervalTrigger(seconds=retraining.check_interval_s), next_run_time=now
        )
        self._scheduler.start()
        self._log.emit(
            "info",
            "worker_started",
            {"metrics_port": self.port, "check_interval_s": retraining.check_interval_s},
        )
        self._log.flush()

    def stop(self) -> bool:
        """Stop taking work, wait for a running check up to the grace period, shut down.
        Returns whether the worker ended idle (False: a retrain was cut short)."""
        self._scheduler.pause()
        idle = self._idle.wait(self._settings.shutdown_grace_s)
        self._scheduler.shutdown(wait=False)
        if self._server is not None:
            self._server.shutdown()
        with contextlib.suppress(ModelyardError):  # unreachable: it lapses on its own
            self._leadership.resign()
        self._log.emit("info", "worker_stopped", {"idle": idle})
        self._log.close()
        self._lease_log.close()
        if idle:
            self._stores.close()
        return idle

    def _keep_lease(self) -> None:
        try:
            self._lease.tick(self._lease_log)
        except Exception as error:  # the scheduler must keep its job; the lease lapses
            text = error.message if isinstance(error, ModelyardError) else repr(error)
            self._lease_log.emit("error", LeaseJob.failure_event, {"error": text})
        finally:
            self._lease_log.flush()

    def _beat(self) -> None:
        self._heartbeat.set(time.time())

    def _check(self) -> None:
        if not self._leadership.leading():  # another worker checks
            self._checks.labels("standby").inc()
            return
        self._idle.clear()
        self._busy.set(1)
        try:
            self._job.tick(self._log)
            self._checks.labels("ok").inc()
            for result in self._job.last:
                if result.retrain is not None:
                    self._retrains.labels(result.deployment, result.retrain.status).inc()
        except Exception as error:  # the scheduler must keep its job
            self._checks.labels("failed").inc()
            self._log.emit("error", "retrain_check_failed", {"error": repr(error)})
        finally:
            self._busy.set(0)
            self._idle.set()
            self._log.flush()
