"""Continuous monitoring as a runner job: every ``monitoring.check_interval_s``, one
``monitor_cycle`` per deployment with logged traffic, over the last
``monitoring.check_window_s`` (at most the latest ``monitoring.check_max_requests``
requests of it, so a busy deployment's pass stays small in memory and time).

A cycle measures live metrics (labels joined from feedback), stores a drift check
per version (the time series ``modelyard monitor drift`` reads), evaluates the
deployment's alert rules (streaks and cooldowns carry over between cycles) and
then sends the webhooks that are due, with their retries. The latest figures are
written as Prometheus text to ``publish_to``: a server passes a file of its metrics
directory, which every worker appends to its ``/metrics``.
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

from modelyard.config.sections import MonitoringSettings
from modelyard.errors import ModelyardError
from modelyard.monitoring.drift_job import CycleResult, monitor_cycle
from modelyard.monitoring.feedback_join import joined
from modelyard.monitoring.inference_log.repository import LabelledLogRepository
from modelyard.monitoring.live_metrics import LiveMetricsExporter
from modelyard.monitoring.repository import ModelOf, MonitoringRepository
from modelyard.monitoring.rules import AlertState
from modelyard.monitoring.webhooks import deliver_due
from modelyard.registry import Catalog
from modelyard.runner.periodic import EventLog


class MonitorJob:
    """``run_once`` every ``monitoring.check_interval_s``, the first after one interval."""

    name = "monitor"
    failure_event = "monitor_failed"
    wait_first = True

    def __init__(
        self,
        monitoring: MonitoringSettings,
        *,
        inference_log: LabelledLogRepository,
        repository: MonitoringRepository,
        catalog: Catalog,
        model_of: ModelOf,
        publish_to: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._monitoring = monitoring
        self.interval_s = monitoring.check_interval_s
        self._inference_log = inference_log
        self._repository = repository
        self._catalog = catalog
        self._model_of = model_of
        self._publish_to = publish_to
        self._clock = clock
        self._registry = CollectorRegistry(auto_describe=False)
        self._exporter = LiveMetricsExporter(self._registry)
        self._states: dict[str, AlertState] = {}
        self._rng = np.random.default_rng()

    def tick(self, log: EventLog) -> None:
        with httpx.Client(timeout=10.0) as client:
            self.run_once(client, log)

    def run_once(self, client: httpx.Client, log: EventLog) -> dict[str, CycleResult | None]:
        """One cycle per deployment with logged traffic; a deployment that fails is logged
        and the others still run. Returns each deployment's result (None: failed)."""
        now = self._clock()
        start = now - self._monitoring.check_window_s
        reader = partial(joined, self._inference_log, newest=self._monitoring.check_max_requests)
        results: dict[str, CycleResult | None] = {}
        for name in self._inference_log.deployments():
            try:
                result = monitor_cycle(
                    self._repository, self._catalog, name, start, now, window_reader=reader,
                    now=now, model_of=self._model_of, state=self._states.get(name),
                    exporter=self._exporter, rng=self._rng,
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
        deliver_due(self._repository, client, now, self._rng)
        self._publish()
        return results

    def _publish(self) -> None:
        if self._publish_to is None:
            return
        temporary = self._publish_to.with_suffix(".tmp")
        temporary.write_bytes(generate_latest(self._registry))
        os.replace(temporary, self._publish_to)
