"""Continuous monitoring in the server: every ``monitoring.check_interval_s``, one
``monitor_cycle`` per deployment with logged traffic, over the last
``monitoring.check_window_s`` (at most the latest ``monitoring.check_max_requests``
requests of it, so a busy deployment's pass stays small in memory and time).

A cycle measures live metrics (labels joined from feedback), stores a drift check
per version (the time series ``modelyard monitor drift`` reads), evaluates the
deployment's alert rules (streaks and cooldowns carry over between cycles) and
then sends the webhooks that are due, with their retries. The latest figures are
written as Prometheus text into the server's metrics directory; every worker
appends it to its ``/metrics`` (``ServingApp.metrics_text``), so a scrape of any
worker sees them. One per server, on a thread of the process that answers no
requests, beside the rollout controller.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx
import numpy as np
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import CollectorRegistry

from modelyard.config import Settings
from modelyard.errors import ModelyardError
from modelyard.monitoring.drift_job import CycleResult, monitor_cycle
from modelyard.monitoring.feedback_join import joined
from modelyard.monitoring.inference_log.sql import SqlInferenceLogRepository
from modelyard.monitoring.live_metrics import LiveMetricsExporter
from modelyard.monitoring.rules import AlertState
from modelyard.monitoring.sql import SqlMonitoringRepository
from modelyard.monitoring.webhooks import deliver_due
from modelyard.runner.periodic import PeriodicLoop
from modelyard.runner.served import served_model
from modelyard.serving.telemetry.jsonlog import JsonLog
from modelyard.serving.telemetry.metrics import MONITORING_TEXT
from modelyard.yard import Yard


class MonitorLoop(PeriodicLoop):
    """``run_once`` every ``monitoring.check_interval_s`` on a daemon thread until ``stop``."""

    name = "monitor"
    failure_event = "monitor_failed"

    def __init__(
        self,
        settings: Settings,
        *,
        metrics_dir: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(settings, settings.monitoring.check_interval_s, wait_first=True)
        self._publish_to = None if metrics_dir is None else metrics_dir / MONITORING_TEXT
        self._clock = clock
        self._registry = CollectorRegistry(auto_describe=False)
        self._exporter = LiveMetricsExporter(self._registry)
        self._states: dict[str, AlertState] = {}
        self._rng = np.random.default_rng()

    def tick(self, yard: Yard, log: JsonLog) -> None:
        with httpx.Client(timeout=10.0) as client:
            self.run_once(yard, client, log)

    def run_once(
        self, yard: Yard, client: httpx.Client, log: JsonLog
    ) -> dict[str, CycleResult | None]:
        """One cycle per deployment with logged traffic; a deployment that fails is logged
        and the others still run. Returns each deployment's result (None: failed)."""
        now = self._clock()
        monitoring = self._settings.monitoring
        start = now - monitoring.check_window_s
        inference_log = SqlInferenceLogRepository(yard.db)
        reader = partial(joined, inference_log, newest=monitoring.check_max_requests)
        repository, model_of = SqlMonitoringRepository(yard.db), served_model(yard)
        results: dict[str, CycleResult | None] = {}
        for name in inference_log.deployments():
            try:
                result = monitor_cycle(
                    repository, yard.registry, name, start, now, window_reader=reader, now=now,
                    model_of=model_of, state=self._states.get(name), exporter=self._exporter,
                    rng=self._rng,
                )  # fmt: skip
            except Exception as error:  # one deployment's problem must not stop the others
                text = error.message if isinstance(error, ModelyardError) else repr(error)
                log.emit("error", "monitor_cycle_failed", {"deployment": name, "error": text})
                results[name] = None
                continue
            self._states[name] = result.state
            results[name] = result
            for event in result.alerts:
                log.emit("warning", "alert", {"deployment": name, "reason": event.alert.reason})
        deliver_due(repository, client, now, self._rng)
        self._publish()
        return results

    def _publish(self) -> None:
        if self._publish_to is None:
            return
        temporary = self._publish_to.with_suffix(".tmp")
        temporary.write_bytes(generate_latest(self._registry))
        os.replace(temporary, self._publish_to)
