"""Running the rollout controller next to the server, on what the inference log recorded.

``InferenceLogMetrics`` is the ``routing.MetricsSource`` the controller judges a
canary with: one version's requests on a deployment over ``[start, end)``, read
from the inference log (``monitoring.log_store.read_window``). A request failed
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

import threading
import time
from collections.abc import Callable

import numpy as np

from modelyard.config import Settings
from modelyard.errors import ModelyardError
from modelyard.monitoring.log_store import read_window
from modelyard.monitoring.window import Window
from modelyard.registry.profile import output_columns
from modelyard.routing import DeploymentStore, MetricsSnapshot, RolloutController, TickResult
from modelyard.serving.app import log_path
from modelyard.serving.jsonlog import JsonLog
from modelyard.serving.shadow import SHADOW_ARM
from modelyard.store.database import Database
from modelyard.yard import Yard

TICK_INTERVAL_S = 1.0
# The output columns a prediction sample is taken from, first found wins.
PREDICTION_COLUMNS = ("score", "prediction", "label")


def snapshot_of(window: Window) -> MetricsSnapshot:
    """A window's traffic as the canary gates read it (see the module docstring)."""
    if window.requests and (window.arm == SHADOW_ARM).any():
        window = window.select(window.arm != SHADOW_ARM)
    status = window.status
    answered = status < 400
    latency = window.latency_ms[answered]
    latency = latency[np.isfinite(latency) & (latency >= 0)]
    return MetricsSnapshot(
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
    """A ``routing.MetricsSource`` over the inference log in ``db``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def __call__(self, deployment: str, version: int, start: float, end: float) -> MetricsSnapshot:
        return snapshot_of(read_window(self._db, deployment, start, end, version=version))


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


class RolloutLoop:
    """``RolloutController.tick`` every ``interval_s`` on a daemon thread until ``stop``."""

    def __init__(
        self,
        settings: Settings,
        *,
        interval_s: float = TICK_INTERVAL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._interval_s = interval_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0

    def start(self) -> RolloutLoop:
        self._thread = threading.Thread(target=self._run, name="rollout-controller", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        log = JsonLog(log_path(self._settings), worker="rollout-controller")
        try:
            with Yard(self._settings) as yard:
                store = DeploymentStore(yard.db, yard.registry)
                controller = RolloutController(
                    store, InferenceLogMetrics(yard.db), clock=self._clock
                )
                while not self._stop.is_set():
                    self._tick(controller, log)
                    log.flush()
                    self._stop.wait(self._interval_s)
        finally:
            log.close()

    def _tick(self, controller: RolloutController, log: JsonLog) -> None:
        try:
            results = controller.tick(self._clock())
        except Exception as error:  # a database hiccup must not end the loop
            text = error.message if isinstance(error, ModelyardError) else repr(error)
            log.emit("error", "rollout_tick_failed", {"error": text})
            return
        self.ticks += 1
        for result in results:
            level = "error" if result.error is not None else "info"
            log.emit(level, "rollout_decision", decision_fields(result))
