"""The rollout controller as a runner job, judging canaries on what the inference log holds.

``InferenceLogMetrics`` is the ``routing.MetricsSource`` the controller judges a
canary with: one version's requests on a deployment over ``[start, end)``, read from
the inference log and measured by monitoring (``live_metrics.served_sample``: server
errors, the answered requests' latencies, their predictions; shadow copies never
count), plus, for at most ``max_rows`` of its requests drawn at random:

* the losses of those with a label (``live_metrics.row_losses``);
* for the canary, the champion's decisions on the same logged inputs: the champion is
  loaded from the registry once and run here, in the runner, off the request path, so
  that "decisions differ" compares two models on the same requests rather than two
  arms on different ones.

``RolloutJob`` calls ``RolloutController.tick`` about once a second; each
decision is a ``rollout.*`` event row (the controller's) and a ``rollout_decision``
line in the event log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from modelyard.errors import ModelyardError
from modelyard.monitoring.feedback_join import with_request_labels
from modelyard.monitoring.inference_log.repository import LabelledLogRepository
from modelyard.monitoring.inference_log.storage import read_window
from modelyard.monitoring.live_metrics import decisions, row_losses, served_sample
from modelyard.monitoring.window import SHADOW_ARM, Window
from modelyard.registry.flavours.base import Predictor
from modelyard.registry.refs import ModelRef
from modelyard.routing import ArmTraffic, RolloutController, TickResult
from modelyard.runner.periodic import EventLog

log = logging.getLogger(__name__)

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
    """A ``routing.MetricsSource`` over the inference log in ``log``; ``predictor`` loads
    a version to re-run (None: decisions are not compared)."""

    def __init__(
        self,
        log: LabelledLogRepository,
        predictor: Callable[[ModelRef], Predictor] | None = None,
        *,
        max_rows: int = 5_000,
        seed: int = 0,
    ) -> None:
        self._log = log
        self._predictor = predictor
        self._loaded: dict[ModelRef, Predictor | None] = {}
        self._max_rows = max_rows
        self._rng = np.random.default_rng(seed)

    def __call__(
        self,
        deployment: str,
        version: int,
        start: float,
        end: float,
        *,
        compare_with: ModelRef | None = None,
    ) -> ArmTraffic:
        window = read_window(self._log, deployment, start, end, version=version)
        traffic = snapshot_of(window)
        sample = self._sample(window)
        if not sample.rows:
            return traffic
        judged = with_request_labels(self._log, sample)
        losses = row_losses(judged)
        if losses is not None:
            traffic = replace(traffic, task=losses[0], losses=losses[1])
        champion = None if compare_with is None else self._load(compare_with)
        if champion is not None:
            compared = _compare(champion, sample)
            if compared is not None:
                traffic = replace(
                    traffic, decisions_compared=compared[0], decisions_changed=compared[1]
                )
        return traffic

    def _sample(self, window: Window) -> Window:
        """At most ``max_rows`` answered requests that reached users, drawn at random."""
        if not window.requests:
            return window
        kept = (window.status < 400) & (window.arm != SHADOW_ARM)
        chosen = np.flatnonzero(kept)
        if chosen.size > self._max_rows:
            chosen = self._rng.choice(chosen, self._max_rows, replace=False)
        mask = np.zeros(window.requests, dtype=bool)
        mask[chosen] = True
        return window.select(mask)

    def _load(self, ref: ModelRef) -> Predictor | None:
        if ref not in self._loaded and self._predictor is not None:
            try:
                self._loaded[ref] = self._predictor(ref)
            except ModelyardError as error:
                log.warning("cannot compare decisions with %s: %s", ref, error.message)
                self._loaded[ref] = None
        return self._loaded.get(ref)


def _compare(champion: Predictor, window: Window) -> tuple[int, int] | None:
    """(rows compared, rows whose decision the champion makes differently): the canary's
    logged inputs run through the champion; None for a regressor or without inputs."""
    served = decisions(window.outputs)
    if served is None or not window.inputs:
        return None
    names = [field.name for field in champion.signature.inputs]
    if any(name not in window.inputs for name in names):
        return None
    try:
        again = decisions(champion.predict({name: window.inputs[name] for name in names}))
    except Exception as error:  # a model's own bug must not stop the other checks
        log.warning("the champion could not re-run the canary's inputs: %s", error)
        return None
    if again is None or again.shape != served.shape:
        return None
    return int(served.size), int(np.count_nonzero(served != again))


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
