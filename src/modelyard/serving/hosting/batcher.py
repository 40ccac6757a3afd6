"""Adaptive micro-batching for one model version on one asyncio event loop.

Concurrent requests are queued and merged into one vectorised model call; the
rules for when are ``policy.BatchPolicy``'s. Cheap models (a tree ensemble
takes ~10-100 us a batch) run on the event loop itself: handing a call to a
thread pool costs more than the call (BENCHMARKING.md measured 2.5-4x slower
handlers). Models whose full batch takes longer than ``THREAD_ABOVE_S`` run on
one dedicated thread instead, so the loop keeps reading requests while the model
works (onnxruntime and numpy release the GIL).

Time is read from ``clock`` (``time.monotonic``), not ``loop.time()``: uvloop's
loop time is cached per loop turn at millisecond resolution, too coarse for
deadlines and waits measured in microseconds.

Each request keeps its own deadline: expired requests are answered
``DeadlineExceededError`` instead of being run, and a request running in, or queued
behind, a slow threaded batch is answered when its deadline passes, whatever the
model does. A model call can hang; the batcher bounds what that costs:

* A threaded call whose requests have all been answered 504 is abandoned: the
  version moves on to a fresh thread (``new_executor``) and the stuck one is never
  reused. At most ``_SPARE_THREADS`` calls of one version are abandoned at a time;
  past that its requests wait, and are answered 504, until a call returns or the
  worker is replaced (``oldest_call_started`` feeds the worker's hang check).
* An inline call that overran (``policy.overran_inline``) moves its model to a thread
  for later calls. One that never returns freezes the loop: that is for the
  supervisor to see (``process.watchdog``).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from modelyard.errors import (
    DeadlineExceededError,
    ModelFailedError,
    ModelyardError,
    OverloadedError,
)
from modelyard.serving.hosting.outcomes import RequestRecord
from modelyard.serving.hosting.policy import (
    AdmissionPolicy,
    BatchPolicy,
    batch_take,
    estimated_wait,
    overran_inline,
    updated_row_cost,
)
from modelyard.serving.hosting.validation import ModelInput, Prepared

Outputs = dict[str, np.ndarray]
# A request's share of a batch: the batch's outputs and its rows ``start:stop``.
Result = tuple[Outputs, int, int]
# Called after every batch with (rows, requests, seconds).
BatchObserver = Callable[[int, int, float], None]
# Called after a model call, before its requests are answered, with each request's
# record and rows, the merged input, the outputs and the seconds the call took; raising
# fails the batch (see ``outcomes``).
BatchListener = Callable[[list[tuple[RequestRecord, int, int]], ModelInput, Outputs, float], None]

# Above this many seconds for a full batch, a model runs on its own thread.
THREAD_ABOVE_S = 0.002
# Stuck calls of one version left running on threads of their own while the version
# goes on with a fresh thread: enough for a model that hangs on a rare input to keep
# answering the others, bounded so that one hanging on every input cannot pile up
# threads before the worker is replaced.
_SPARE_THREADS = 2


@dataclass(slots=True)
class _Pending:
    prepared: Prepared
    deadline: float
    enqueued: float
    future: asyncio.Future[Result] = field(repr=False)
    record: RequestRecord


def merge_inputs(inputs: list[ModelInput]) -> ModelInput:
    """Stack requests' inputs row-wise into one batch input."""
    if len(inputs) == 1:
        return inputs[0]
    first = inputs[0]
    if isinstance(first, np.ndarray):
        return np.concatenate(inputs)  # type: ignore[arg-type]
    parts: list[dict[str, np.ndarray]] = inputs  # type: ignore[assignment]
    return {name: np.concatenate([part[name] for part in parts]) for name in first}


class Batcher:
    """The queue and batch runner of one loaded model version."""

    def __init__(
        self,
        predict: Callable[[ModelInput], Outputs],
        *,
        label: str,
        policy: BatchPolicy,
        admission: AdmissionPolicy,
        loop: asyncio.AbstractEventLoop,
        executor: Executor | None = None,
        new_executor: Callable[[], Executor] | None = None,
        request_timeout_s: float = math.inf,
        observe: BatchObserver | None = None,
        listen: BatchListener | None = None,
        lag: Callable[[], float] = lambda: 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._predict = predict
        self._label = label
        self._policy = policy
        self._admission = admission
        self._loop = loop
        self._executor = executor
        self._new_executor = new_executor
        self._request_timeout_s = request_timeout_s
        self._observe = observe
        self._listen = listen
        self._lag = lag
        self._clock = clock
        self._queue: deque[_Pending] = deque()
        self.queued_rows = 0
        self.running_rows = 0
        self.row_cost_s = 0.0
        self._last_batch_requests = 0
        self._soon: asyncio.Handle | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._running: list[_Pending] = []
        self._expiry: asyncio.TimerHandle | None = None
        self._expiry_at = math.inf
        # The clock at the start of each threaded call that has not returned, by call.
        self._calls: dict[int, float] = {}
        self._call_count = 0
        self._spares = _SPARE_THREADS

    @property
    def threaded(self) -> bool:
        """Whether calls run on a thread (from the start, or since an inline call overran)."""
        return self._executor is not None

    def oldest_call_started(self) -> float | None:
        """The clock reading at the start of the oldest threaded call still running
        (abandoned ones included); None when none is."""
        return min(self._calls.values(), default=None)

    def running_for(self, now: float) -> float:
        """Seconds the call running now (not an abandoned one) has run at ``now``; 0.0 when
        none is running on a thread."""
        started = self._calls.get(self._call_count) if self.running_rows else None
        return 0.0 if started is None else now - started

    def close(self) -> None:
        """Release the model's thread, if it has one (a stuck one is left to itself)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)

    @property
    def saturated(self) -> bool:
        """The queue is full: new requests can be refused before their body is parsed."""
        return self.queued_rows >= self._admission.max_queue_rows

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing running: safe to unload."""
        return not self._queue and self.running_rows == 0

    def submit(
        self, prepared: Prepared, deadline: float, record: RequestRecord
    ) -> asyncio.Future[Result]:
        """Queue a validated request; the future resolves to its slice of a batch.

        ``record`` is handed to the batch listener with the request's rows. Raises
        ``OverloadedError`` at once when the admission policy refuses it.
        """
        now = self._clock()
        if deadline <= now:
            raise DeadlineExceededError(
                f"{self._label}: the request's deadline passed before it could be queued"
            )
        reason = self._admission.refuse(
            rows=prepared.rows,
            queued_rows=self.queued_rows,
            estimated_wait_s=estimated_wait(
                queued_rows=self.queued_rows,
                running_rows=self.running_rows,
                row_cost_s=self.row_cost_s,
                running_for_s=self.running_for(now),
            ),
            budget_s=deadline - now,
            lag_s=self._lag(),
        )
        if reason is not None:
            raise OverloadedError(f"{self._label} is overloaded: {reason}; retry shortly")
        future: asyncio.Future[Result] = self._loop.create_future()
        self._queue.append(_Pending(prepared, deadline, now, future, record))
        self.queued_rows += prepared.rows
        if self.running_rows:
            self._arm(deadline)  # answered at its deadline even if the model never returns
        self._schedule(now)
        return future

    def _schedule(self, now: float) -> None:
        if not self._queue:
            return
        delay = self._policy.flush_delay(
            queued_rows=self.queued_rows,
            waited_s=now - self._queue[0].enqueued,
            busy=self.running_rows > 0,
            last_batch_requests=self._last_batch_requests,
        )
        if delay is None:
            return
        if delay <= 0.0:
            if self._soon is None:
                self._soon = self._loop.call_soon(self._flush)
        elif self._timer is None and self._soon is None:
            self._timer = self._loop.call_later(delay, self._flush)

    def _flush(self) -> None:
        if self._soon is not None:
            self._soon.cancel()  # no-op when this call is the one that fired
            self._soon = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.running_rows or not self._queue:
            return
        now = self._clock()
        batch = self._take(now)
        if batch:
            rows = sum(p.prepared.rows for p in batch)
            model_input = merge_inputs([p.prepared.model_input for p in batch])
            self._last_batch_requests = len(batch)
            if self._executor is None:
                self._run_inline(batch, rows, model_input)
            else:
                self._run_threaded(batch, rows, model_input)
        self._schedule(self._clock())

    def _take(self, now: float) -> list[_Pending]:
        queue = self._queue
        count = batch_take([p.prepared.rows for p in queue], self._policy.max_batch_size)
        batch = []
        for _ in range(count):
            pending = queue.popleft()
            self.queued_rows -= pending.prepared.rows
            if pending.future.done():  # the handler gave up (client disconnected)
                continue
            if pending.deadline <= now:
                pending.future.set_exception(_deadline_error(self._label, pending, now))
                continue
            batch.append(pending)
        return batch

    def _run_inline(self, batch: list[_Pending], rows: int, model_input: ModelInput) -> None:
        started = time.perf_counter()
        try:
            outputs = self._predict(model_input)
        except Exception as error:  # a model bug must fail its batch, not the server
            self._moves_off_loop(time.perf_counter() - started)
            self._fail(batch, error)
            return
        seconds = time.perf_counter() - started
        self._moves_off_loop(seconds)
        self._finish(batch, rows, model_input, outputs, seconds)

    def _moves_off_loop(self, seconds: float) -> None:
        if self._new_executor is not None and overran_inline(seconds, self._request_timeout_s):
            self._executor = self._new_executor()

    def _run_threaded(self, batch: list[_Pending], rows: int, model_input: ModelInput) -> None:
        self.running_rows = rows
        self._running = batch
        started = time.perf_counter()
        executor = self._executor
        call = self._call_count = self._call_count + 1
        self._calls[call] = self._clock()
        future = self._loop.run_in_executor(executor, self._predict, model_input)
        self._arm(min(p.deadline for p in batch))

        def done(finished: asyncio.Future[Outputs]) -> None:
            del self._calls[call]
            if self._running is not batch:  # abandoned: its requests were answered 504
                self._spares += 1
                if executor is not None:
                    executor.shutdown(wait=False)  # its thread ends, now that it is free
                return
            self._running = []
            self.running_rows = 0
            self._disarm_if_idle()
            error = (
                asyncio.CancelledError("the model call was cancelled")
                if finished.cancelled()
                else finished.exception()
            )
            if error is not None:
                self._fail(batch, error)
            else:
                seconds = time.perf_counter() - started
                self._finish(batch, rows, model_input, finished.result(), seconds)
            self._schedule(self._clock())

        future.add_done_callback(done)

    def _arm(self, deadline: float) -> None:
        """Make sure the deadline sweep runs by ``deadline``."""
        if deadline >= self._expiry_at:
            return
        if self._expiry is not None:
            self._expiry.cancel()
        self._expiry_at = deadline
        self._expiry = self._loop.call_later(max(0.0, deadline - self._clock()), self._expire)

    def _disarm_if_idle(self) -> None:
        if self._expiry is not None and not self.running_rows:
            self._expiry.cancel()
            self._expiry = None
            self._expiry_at = math.inf

    def _expire(self) -> None:
        """Answer 504 to every request of the running batch and of the queue behind it whose
        deadline has passed; abandon a call whose requests are all answered."""
        self._expiry = None
        self._expiry_at = math.inf
        if not self.running_rows:
            return
        now = self._clock()
        for pending in self._running:
            if not pending.future.done() and pending.deadline <= now:
                pending.future.set_exception(_deadline_error(self._label, pending, now))
        kept: deque[_Pending] = deque()
        for pending in self._queue:
            if not pending.future.done() and pending.deadline <= now:
                pending.future.set_exception(_deadline_error(self._label, pending, now))
            if pending.future.done():
                self.queued_rows -= pending.prepared.rows
            else:
                kept.append(pending)
        self._queue = kept
        if all(p.future.done() for p in self._running) and self._abandon():
            self._schedule(now)
        if self.running_rows:
            waiting = [p.deadline for p in (*self._running, *self._queue) if not p.future.done()]
            if waiting:
                self._arm(min(waiting))

    def _abandon(self) -> bool:
        """Leave the running call to its thread and go on with a fresh one, if allowed."""
        if self._new_executor is None or self._spares <= 0:
            return False
        self._spares -= 1
        self._executor = self._new_executor()
        self._running = []
        self.running_rows = 0
        return True

    def _finish(
        self,
        batch: list[_Pending],
        rows: int,
        model_input: ModelInput,
        outputs: Outputs,
        seconds: float,
    ) -> None:
        self.row_cost_s = updated_row_cost(self.row_cost_s, rows, seconds)
        if self._observe is not None:
            self._observe(rows, len(batch), seconds)
        spans = []
        start = 0
        for pending in batch:
            stop = start + pending.prepared.rows
            spans.append((pending, start, stop))
            start = stop
        if self._listen is not None:
            try:
                self._listen([(p.record, a, b) for p, a, b in spans], model_input, outputs, seconds)
            except ModelyardError as refusal:  # e.g. the inference log is full: 503
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(refusal)
                return
            except Exception as error:
                self._fail(batch, error)
                return
        for pending, start, stop in spans:
            if not pending.future.done():
                pending.future.set_result((outputs, start, stop))

    def _fail(self, batch: list[_Pending], error: BaseException) -> None:
        # The client sees that the model failed, never what it said: a model's exception
        # text may quote file paths or other requests' data. The log keeps it (``detail``).
        failure = ModelFailedError(
            f"{self._label} failed on this request's batch; the server's log has the detail",
            f"batch of {len(batch)} request(s): {type(error).__name__}: {error}",
        )
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(failure)


def _deadline_error(label: str, pending: _Pending, now: float) -> DeadlineExceededError:
    waited = (now - pending.enqueued) * 1000
    return DeadlineExceededError(
        f"{label} could not answer before the request's deadline (waited {waited:.0f} ms)"
    )


def run_mode(full_batch_seconds: float) -> str:
    """``"loop"`` or ``"thread"``: where a model whose full batch takes this long should run."""
    return "thread" if full_batch_seconds > THREAD_ABOVE_S else "loop"
