"""Shadow traffic: mirror a share of a deployment's requests to versions whose answers
nobody sees, and compare them with the primary's.

Once the primary's answer is ready, ``ShadowMirror.mirror`` schedules the copy for
the next turn of the event loop, after the answer has been sent: on that turn a
copy of the request's validated input is queued on each shadow version's shadow
lane (``ModelRuntime.shadow_lane``), a batcher of its own that always runs the model
on a thread. The primary request never waits for a shadow, not even for the
queueing, and a shadow's model never runs on the event loop: a version that was fast
at warm-up and hangs on live inputs stalls only its lane. The shadow's answer arrives
on a future callback that compares it with the primary's rows (``agreement``),
records the outcome, agreement and both latencies in ``/metrics`` and hands a
``ShadowEvent`` to the ``on_shadow`` hooks (the inference log records it with
``arm="shadow"``).

Bounded (``admits``): a lane's queue holds at most the rows it can still answer
within ``request_timeout_s`` behind the batch it is running (``room``, from the
slower of the warm-up batch time and the call running now), and a worker at most
``max_inflight`` shadow requests; while a lane's call has run past the timeout
(hung) the lane takes nothing. A copy that finds no room is dropped and counted
(``modelyard_shadow_requests_total{outcome="dropped"}``) at the cost of a counter,
never queued. A hung shadow call is abandoned once its copies are answered 504
(``batcher``), at most ``_SPARE_THREADS`` at a time, and it never gets the worker
replaced: that would cost the primary its requests. A shadow that raises or times
out is counted too; nothing a shadow does can fail the primary.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from modelyard.errors import DeadlineExceededError, ModelyardError
from modelyard.serving.hosting.outcomes import SHADOW_ARM, RequestRecord
from modelyard.serving.hosting.runtime import ModelRuntime
from modelyard.serving.hosting.served_deployment import ServedDeployment
from modelyard.serving.hosting.validation import ModelInput, Prepared
from modelyard.serving.telemetry.jsonlog import JsonLog
from modelyard.serving.telemetry.metrics import ServingMetrics
from modelyard.serving.wire.status import http_status

Outputs = dict[str, np.ndarray]
Result = tuple[Outputs, int, int]
MAX_INFLIGHT = 256
# Scores closer than this count as the same answer (float32 round-off is ~1e-7).
AGREE_WITHIN = 1e-6
_SCORES = ("probabilities", "score", "prediction")


@dataclass(frozen=True, slots=True)
class ShadowEvent:
    """One shadow answer (or failure). ``ts`` is the primary request's arrival; rows
    ``start:stop`` of ``outputs`` (the shadow's whole batch) are this request's;
    ``outputs`` is None when the shadow failed. ``agreed_rows`` is None when the two
    answers have no output to compare."""

    request_id: str
    deployment: str
    model: str
    version: int
    primary_version: int
    ts: float
    duration_s: float
    primary_duration_s: float
    status: int
    code: str | None
    rows: int
    model_input: ModelInput
    outputs: Outputs | None
    start: int
    stop: int
    agreed_rows: int | None


ShadowHook = Callable[[ShadowEvent], None]


def agreement(
    primary: Outputs, primary_rows: slice, shadow: Outputs, shadow_rows: slice
) -> tuple[int, int] | None:
    """``(rows compared, rows that agree)``: the same ``label`` when both have one, else
    every score (probabilities, score or prediction) within ``AGREE_WITHIN``."""
    for name in ("label", *_SCORES):
        if name in primary and name in shadow:
            mine = np.asarray(primary[name][primary_rows])
            theirs = np.asarray(shadow[name][shadow_rows])
            rows = len(mine)
            if mine.shape != theirs.shape:
                return rows, 0
            same: np.ndarray
            if name == "label" or mine.dtype.kind not in "fiub" or theirs.dtype.kind not in "fiub":
                same = np.asarray(mine == theirs, dtype=bool)
            else:
                gap = np.abs(mine.astype(np.float64) - theirs.astype(np.float64))
                same = np.asarray(gap < AGREE_WITHIN)
            agreed = int(same.reshape(rows, -1).all(axis=1).sum()) if rows else 0
            return rows, agreed
    return None


def room(timeout_s: float, full_batch_s: float, batch_size: int) -> int:
    """Rows a shadow's queue may hold: the full batches it can run within ``timeout_s``
    after the one running now (at least one batch)."""
    batches = int(timeout_s / max(full_batch_s, 1e-6)) - 1
    return max(1, batches) * batch_size


def admits(
    *,
    rows: int,
    queued_rows: int,
    saturated: bool,
    running_s: float,
    inflight: int,
    max_inflight: int,
    full_batch_s: float,
    batch_size: int,
    timeout_s: float,
) -> bool:
    """Whether a shadow lane takes a copy of ``rows`` rows now, or it is dropped: the
    worker has room for another shadow request, the lane's call has not run past the
    timeout (``running_s``; anything queued behind a hung call would only expire), and
    the rows fit what the lane can answer in time at the slower of its warm-up batch
    time and the running call's."""
    if inflight >= max_inflight or saturated or running_s >= timeout_s:
        return False
    limit = room(timeout_s, max(full_batch_s, running_s), batch_size)
    return queued_rows + rows <= limit


@dataclass(frozen=True, slots=True)
class _Copy:
    deployment: str
    model: str
    version: int
    primary_version: int
    request_id: str
    ts: float
    sent: float
    primary_s: float
    model_input: ModelInput
    rows: int
    outputs: Outputs
    start: int
    stop: int


class ShadowMirror:
    """Mirrors requests to shadow versions for one worker; event-loop thread only."""

    def __init__(
        self,
        metrics: ServingMetrics,
        log: JsonLog,
        hooks: list[ShadowHook],
        *,
        timeout_s: float,
        max_inflight: int = MAX_INFLIGHT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics = metrics
        self._log = log
        self._hooks = hooks
        self._timeout_s = timeout_s
        self._max_inflight = max_inflight
        self._clock = clock
        self.inflight = 0
        self._hook_errors: set[str] = set()

    def mirror(
        self,
        served: ServedDeployment,
        shadows: tuple[int, ...],
        primary_version: int,
        request: tuple[RequestRecord, float, Prepared],
        outputs: Outputs,
        start: int,
        stop: int,
    ) -> None:
        """Queue a copy of ``request`` (its record, when it arrived on the monotonic clock,
        its validated input) on each of ``shadows`` (versions of ``served``) to compare
        with the primary's ``outputs`` rows ``start:stop``, on the loop's next turn;
        never waits or raises."""
        record, received, prepared = request
        primary_s = self._clock() - received
        targets = [r for v in shadows if (r := served.runtimes.get(v)) is not None]
        for runtime in targets:
            runtime.active += 1  # not unloaded before the copy is queued (``retire_idle``)
        asyncio.get_running_loop().call_soon(
            self._copy,
            served.name,
            targets,
            primary_version,
            (record.request_id, record.ts, primary_s, prepared),
            outputs,
            start,
            stop,
        )

    def _copy(
        self,
        deployment: str,
        targets: list[ModelRuntime],
        primary_version: int,
        request: tuple[str, float, float, Prepared],
        outputs: Outputs,
        start: int,
        stop: int,
    ) -> None:
        request_id, ts, primary_s, prepared = request
        now = self._clock()
        for runtime in targets:
            runtime.active -= 1
            label = runtime.version_text
            lane = runtime.shadow_lane()
            if not admits(
                rows=prepared.rows,
                queued_rows=lane.queued_rows,
                saturated=lane.saturated,
                running_s=lane.running_for(now),
                inflight=self.inflight,
                max_inflight=self._max_inflight,
                full_batch_s=runtime.full_batch_s,
                batch_size=runtime.batch_size,
                timeout_s=self._timeout_s,
            ):
                self._metrics.shadow(deployment, label, "dropped")
                continue
            copy_record = RequestRecord(request_id, ts, deployment, SHADOW_ARM)
            try:
                future = lane.submit(prepared, now + self._timeout_s, copy_record)
            except ModelyardError:  # refused by the lane's admission policy
                self._metrics.shadow(deployment, label, "dropped")
                continue
            except Exception as error:  # a bug: count it, never let it reach the loop
                self._metrics.shadow(deployment, label, "failed")
                self._note_hook_error("shadow_submit_failed", error)
                continue
            self.inflight += 1
            copy = _Copy(
                deployment,
                runtime.name,
                runtime.version,
                primary_version,
                request_id,
                ts,
                now,
                primary_s,
                prepared.model_input,
                prepared.rows,
                outputs,
                start,
                stop,
            )
            future.add_done_callback(partial(self._answered, copy))

    def _answered(self, copy: _Copy, future: asyncio.Future[Result]) -> None:
        self.inflight -= 1
        seconds = self._clock() - copy.sent
        label = str(copy.version)
        try:
            event = self._judge(copy, future, seconds)
        except Exception as error:  # a bug in comparing must not escape a callback
            self._metrics.shadow(copy.deployment, label, "failed")
            self._note_hook_error("shadow_compare_failed", error)
            return
        for hook in self._hooks:
            try:
                hook(event)
            except Exception as error:  # a hook (the inference log) is never fatal here
                self._metrics.shadow(copy.deployment, label, "hook_failed")
                self._note_hook_error("shadow_hook_failed", error)

    def _judge(self, copy: _Copy, future: asyncio.Future[Result], seconds: float) -> ShadowEvent:
        label = str(copy.version)
        error = asyncio.CancelledError("cancelled") if future.cancelled() else future.exception()
        outputs: Outputs | None = None
        start = stop = 0
        agreed: int | None = None
        if error is not None:
            outcome = "expired" if isinstance(error, DeadlineExceededError) else "failed"
            status = http_status(error) if isinstance(error, ModelyardError) else 500
            code: str | None = error.code if isinstance(error, ModelyardError) else "internal_error"
        else:
            outputs, start, stop = future.result()
            outcome, status, code = "answered", 200, None
            compared = agreement(
                copy.outputs, slice(copy.start, copy.stop), outputs, slice(start, stop)
            )
            if compared is not None:
                self._metrics.shadow_agreement(copy.deployment, label, *compared)
                agreed = compared[1]
            self._metrics.shadow_duration(copy.deployment, label, "shadow", seconds)
            self._metrics.shadow_duration(copy.deployment, label, "primary", copy.primary_s)
        self._metrics.shadow(copy.deployment, label, outcome)
        return ShadowEvent(
            request_id=copy.request_id,
            deployment=copy.deployment,
            model=copy.model,
            version=copy.version,
            primary_version=copy.primary_version,
            ts=copy.ts,
            duration_s=seconds,
            primary_duration_s=copy.primary_s,
            status=status,
            code=code,
            rows=copy.rows,
            model_input=copy.model_input,
            outputs=outputs,
            start=start,
            stop=stop,
            agreed_rows=agreed,
        )

    def _note_hook_error(self, event: str, error: Exception) -> None:
        """Log each distinct error once per worker (the counters show how often)."""
        text = f"{type(error).__name__}: {error}"
        if text not in self._hook_errors and len(self._hook_errors) < 100:
            self._hook_errors.add(text)
            self._log.emit("error", event, {"error": text})
