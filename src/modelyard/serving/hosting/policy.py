"""The serving decisions, as pure functions of plain numbers: when to run a batch,
how many requests go in it, whether to admit a request, how long the queue will take.

No clock, loop or model is read here; ``batcher.Batcher`` passes the figures in.
That keeps the rules easy to test on made-up timelines and easy to reason about.

What was measured here (2 shared vCPUs, RandomForest 100 trees x depth 10 in
onnxruntime, wrk -c32 against 2 workers, 1 row x 30 features per request):

* Requests that arrive in the same event-loop turn already share a call: the
  batches averaged 11-12 rows with ``max_batch_wait_us`` 0, 200 or 500 alike, and
  throughput did not change with the wait (closed-loop clients send their next
  request only after an answer, so holding answers back buys no company). The
  wait is therefore a cap for models with a high fixed cost per call, and 0 is
  the measured choice for tree ensembles.
* With one client (c=1) p50 was the same (0.36 ms) with a 0 or 500 us wait: the
  rule below never holds a request that has no company.
* Per-row cost of that forest: 17 us at 1 row, ~3.5 us at 16-32 rows, ~4.5 us at
  64+ (its kernel changes strategy): so each version's batch cap is measured at
  warm-up (``best_batch_size``) under ``max_batch_size``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Weight of the newest batch in the per-row cost average: recent enough to follow
# a model swap within ~20 batches, smooth enough to ignore one slow call.
_COST_WEIGHT = 0.1


@dataclass(frozen=True)
class BatchPolicy:
    """When the queued requests of one model run as one vectorised call.

    * A full batch (``max_batch_size`` rows) runs at once.
    * While the model is running a batch, requests queue behind it and go
      together as soon as it finishes (nothing waits idle behind a busy model).
    * If the last batch held a single request, nobody else is around: the next
      request runs on the next event-loop turn, so batching adds nothing to
      latency at low load (requests that arrived in the same turn still share).
    * Otherwise requests are arriving together, and the first waits at most
      ``max_wait_s`` for company. So batching never adds more than
      ``max_wait_s`` to any request's latency.
    """

    max_batch_size: int
    max_wait_s: float

    def flush_delay(
        self, *, queued_rows: int, waited_s: float, busy: bool, last_batch_requests: int
    ) -> float | None:
        """Seconds until the queue should run; ``None``: nothing to run or the model is busy."""
        if queued_rows == 0 or busy:
            return None
        if queued_rows >= self.max_batch_size:
            return 0.0
        if last_batch_requests <= 1 or self.max_wait_s <= 0:
            return 0.0
        return max(0.0, self.max_wait_s - waited_s)


def best_batch_size(seconds_by_size: Mapping[int, float], tolerance: float = 0.1) -> int:
    """The largest batch size whose measured cost per row is within ``tolerance`` of the
    lowest: per-row cost usually falls as fixed per-call costs are shared, but a kernel
    may switch strategy at some size and get slower per row after it. Among sizes that
    cost the same per row (to within timing noise), the larger means fewer calls."""
    per_row = {size: seconds / size for size, seconds in seconds_by_size.items()}
    cheapest = min(per_row.values())
    return max(size for size, cost in per_row.items() if cost <= cheapest * (1 + tolerance))


def batch_take(row_counts: Sequence[int], max_batch_size: int) -> int:
    """How many queued requests, from the front, form the next batch.

    As many as fit in ``max_batch_size`` rows, and always at least one: a single
    request larger than the batch size runs alone rather than being split.
    """
    total = 0
    for taken, rows in enumerate(row_counts):
        total += rows
        if total > max_batch_size:
            return max(taken, 1)
    return len(row_counts)


@dataclass(frozen=True)
class AdmissionPolicy:
    """Load shedding: refuse work at the door (503) rather than queue it into a timeout.

    A request is refused when the rows already waiting plus its own exceed
    ``max_queue_rows`` (an empty queue always admits, so one big request is never
    refused for its size alone), when the work ahead of it is estimated to take
    longer than ``max_wait_s`` (if set), or longer than the time left before its
    deadline.
    """

    max_queue_rows: int
    max_wait_s: float | None = None

    def refuse(
        self,
        *,
        rows: int,
        queued_rows: int,
        estimated_wait_s: float,
        budget_s: float,
        lag_s: float = 0.0,
    ) -> str | None:
        """Why the request must be refused, or ``None`` to admit it.

        ``estimated_wait_s`` is the wait for the model (``estimated_wait``), ``lag_s`` how
        far behind the event loop runs. Only the deadline counts the lag: the request has
        already waited it, and refusing an idle model's request would not shorten it."""
        if queued_rows and queued_rows + rows > self.max_queue_rows:
            return (
                f"{queued_rows} rows are already waiting and this request adds {rows} "
                f"(the limit is {self.max_queue_rows})"
            )
        if self.max_wait_s is not None and estimated_wait_s > self.max_wait_s:
            return (
                f"the work ahead would take about {estimated_wait_s * 1000:.1f} ms, more than "
                f"the {self.max_wait_s * 1000:.1f} ms a request may wait"
            )
        if estimated_wait_s + lag_s > budget_s:
            return (
                f"the work ahead would take about {(estimated_wait_s + lag_s) * 1000:.0f} ms, "
                "more than the "
                f"{max(budget_s, 0.0) * 1000:.0f} ms left before the request's deadline"
            )
        return None


def updated_row_cost(previous_s: float, rows: int, seconds: float) -> float:
    """The moving average of seconds per row after a batch of ``rows`` took ``seconds``."""
    if rows <= 0:
        return previous_s
    sample = seconds / rows
    if previous_s <= 0.0:
        return sample
    return previous_s + _COST_WEIGHT * (sample - previous_s)


def estimated_wait(
    *, queued_rows: int, running_rows: int, row_cost_s: float, running_for_s: float = 0.0
) -> float:
    """Seconds before a newly queued request could start on the model: the rows ahead at
    the measured per-row cost, less what the call running has already run."""
    running_left = max(running_rows * row_cost_s - running_for_s, 0.0)
    return queued_rows * row_cost_s + running_left


def lag_average(previous_s: float, observed_s: float) -> float:
    """Smoothed event-loop lag; rises at once, decays over a few samples."""
    observed_s = max(observed_s, 0.0)
    if observed_s >= previous_s:
        return observed_s
    return previous_s + 0.3 * (observed_s - previous_s)


# An inline call longer than this share of the request timeout moves its model to a
# thread: while it ran, every other request of the worker waited (the loop was blocked),
# and a model that took that long once may again. A tenth of the default 5 s is 500 ms,
# 250x the warm-up cut-off (``batcher.THREAD_ABOVE_S``), so a GC pause or a busy
# neighbour on a shared machine does not move a fast model.
INLINE_OVERRUN_SHARE = 0.1


def overran_inline(call_s: float, request_timeout_s: float) -> bool:
    """Whether an inline model call that took ``call_s`` seconds must move its model to a
    thread for later calls."""
    return call_s > request_timeout_s * INLINE_OVERRUN_SHARE


def call_hung(started_s: float | None, now_s: float, limit_s: float) -> bool:
    """Whether a model call that started at ``started_s`` (None: none is running) and has
    not returned by ``now_s`` is stuck past the hang limit."""
    return started_s is not None and now_s - started_s >= limit_s
