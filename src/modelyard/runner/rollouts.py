"""Running the rollout controller next to the server, on what the inference log recorded.

``InferenceLogMetrics`` is the ``routing.MetricsSource`` the controller judges a
canary with: one version's requests on a deployment over ``[start, end)``, read
from the inference log (``monitoring.inference_log.storage.read_window``). A request failed
when its status is 500 or more (a client's 4xx is not the model's fault); the
latency samples are those of the requests answered 2xx/3xx; the prediction
sample is the ``score`` (a binary classifier's positive-class probability),
``prediction`` or numeric ``label`` output of those rows. Shadow copies
(``arm="shadow"``) never count: they answered nobody.

``RolloutLoop`` calls ``RolloutController.tick`` about once a second on a
thread of its own, with its own ``Yard``: exactly one per server. With several
workers it runs in the supervisor process (``workers.Supervisor``), which
answers no requests, so reading the log never takes a serving worker's GIL and
a restarted worker cannot start a second one; a single-worker server runs it on
a thread of that one process (``launch.serve``). Each decision is a
``rollout.*`` event row (the controller's) and a ``rollout_decision`` line in
the JSON log.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from modelyard.config import Settings
from modelyard.monitoring.inference_log.repository import InferenceLogRepository
from modelyard.monitoring.inference_log.sql import SqlInferenceLogRepository
from modelyard.monitoring.inference_log.storage import read_window
from modelyard.monitoring.window import Window
from modelyard.registry.profile import output_columns
from modelyard.routing import ArmTraffic, DeploymentStore, RolloutController, TickResult
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.runner.periodic import PeriodicLoop
from modelyard.serving.hosting.outcomes import SHADOW_ARM
from modelyard.serving.telemetry.jsonlog import JsonLog
from modelyard.yard import Yard

TICK_INTERVAL_S = 1.0
# The output columns a prediction sample is taken from, first found wins.
PREDICTION_COLUMNS = ("score", "prediction", "label")


def snapshot_of(window: Window) -> ArmTraffic:
    """A window's traffic as the canary gates read it (see the module docstring)."""
    if window.requests and (window.arm == SHADOW_ARM).any():
        window = window.select(window.arm != SHADOW_ARM)
    status = window.status
    answered = status < 400
    latency = window.latency_ms[answered]
    latency = latency[np.isfinite(latency) & (latency >= 0)]
    return ArmTraffic(
        request_count=int(window.requests),
        error_count=int((status >= 500).sum()),
        latency_samples_ms=latency if latency.size else None,
        prediction_sample=_predictions(window, answered),
    )


def _predictions(window: Window, answered: np.ndarray) -> np.ndarray | None:
    if not window.rows or not window.outputs:
        return None
    columns = output_columns(window.outputs)
    rows = answered[window.row_request]
    for name in PREDICTION_COLUMNS:
        values = columns.get(name)
        if values is None or values.dtype.kind not in "fiub":
            continue
        sample = values[rows].astype(np.float64)
        sample = sample[np.isfinite(sample)]
        return sample if sample.size else None
    return None


class InferenceLogMetrics:
    """A ``routing.MetricsSource`` over the inference log in ``log``."""

    def __init__(self, log: InferenceLogRepository) -> None:
        self._log = log

    def __call__(self, deployment: str, version: int, start: float, end: float) -> ArmTraffic:
        return snapshot_of(read_window(self._log, deployment, start, end, version=version))


def decision_fields(result: TickResult) -> dict[str, object]:
    """What a JSON log line says about one tick's result."""
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


class RolloutLoop(PeriodicLoop):
    """``RolloutController.tick`` every ``interval_s`` on a daemon thread until ``stop``."""

    name = "rollout-controller"
    failure_event = "rollout_tick_failed"

    def __init__(
        self,
        settings: Settings,
        *,
        interval_s: float = TICK_INTERVAL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(settings, interval_s)
        self._clock = clock
        self._controller: RolloutController | None = None

    def prepare(self, yard: Yard) -> None:
        store = DeploymentStore(SqlDeploymentRepository(yard.db), yard.registry)
        metrics = InferenceLogMetrics(SqlInferenceLogRepository(yard.db))
        self._controller = RolloutController(store, metrics, clock=self._clock)

    def tick(self, yard: Yard, log: JsonLog) -> None:
        assert self._controller is not None
        for result in self._controller.tick(self._clock()):
            level = "error" if result.error is not None else "info"
            log.emit(level, "rollout_decision", decision_fields(result))
