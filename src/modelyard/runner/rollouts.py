"""The rollout controller as a runner job, judging canaries on what the inference log holds.

``InferenceLogMetrics`` is the ``routing.MetricsSource`` the controller judges a
canary with: one version's requests on a deployment over ``[start, end)``, read from
the inference log and measured by monitoring (``live_metrics.served_sample``: server
errors, the answered requests' latencies, their predictions; shadow copies never
count). ``RolloutJob`` calls ``RolloutController.tick`` about once a second; each
decision is a ``rollout.*`` event row (the controller's) and a ``rollout_decision``
line in the event log.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from modelyard.monitoring.inference_log.repository import InferenceLogRepository
from modelyard.monitoring.inference_log.storage import read_window
from modelyard.monitoring.live_metrics import served_sample
from modelyard.monitoring.window import Window
from modelyard.routing import ArmTraffic, RolloutController, TickResult
from modelyard.runner.periodic import EventLog

TICK_INTERVAL_S = 1.0


def snapshot_of(window: Window) -> ArmTraffic:
    """A window's traffic as the canary gates read it (see the module docstring)."""
    sample = served_sample(window)
    return ArmTraffic(
        request_count=sample.requests,
        error_count=sample.server_errors,
        latency_samples_ms=sample.latency_ms,
        prediction_sample=sample.predictions,
    )


class InferenceLogMetrics:
    """A ``routing.MetricsSource`` over the inference log in ``log``."""

    def __init__(self, log: InferenceLogRepository) -> None:
        self._log = log

    def __call__(self, deployment: str, version: int, start: float, end: float) -> ArmTraffic:
        return snapshot_of(read_window(self._log, deployment, start, end, version=version))


def decision_fields(result: TickResult) -> dict[str, object]:
    """What an event log line says about one tick's result."""
    fields: dict[str, object] = {"deployment": result.deployment}
    if result.decision is not None:
        decision = result.decision
        fields.update(
            verdict=decision.verdict.value,
            phase=decision.new_state.phase.value,
            weight=decision.new_state.weight,
            reason=decision.reason,
        )
    if result.synced_to is not None:
        fields["synced_to"] = result.synced_to
    if result.error is not None:
        fields["error"] = result.error
    return fields


class RolloutJob:
    """``RolloutController.tick`` every ``interval_s``, each result a log line."""

    name = "rollout-controller"
    failure_event = "rollout_tick_failed"
    wait_first = False

    def __init__(
        self,
        controller: RolloutController,
        *,
        interval_s: float = TICK_INTERVAL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._controller = controller
        self.interval_s = interval_s
        self._clock = clock

    def tick(self, log: EventLog) -> None:
        for result in self._controller.tick(self._clock()):
            level = "error" if result.error is not None else "info"
            log.emit(level, "rollout_decision", decision_fields(result))
