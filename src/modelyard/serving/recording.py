"""Connecting a serving worker to the durable inference log (monitoring) and feedback.

``InferenceLogRecorder`` is serving's ``InferenceRecorder`` over monitoring's
``InferenceLogger``. Every answered prediction is recorded with its micro-batch
(``Answered``): after the model call and *before* any response of the batch is sent,
the batch's records go to the worker's write-ahead log in one ``os.write``. A response a client
received is therefore on disk (in the kernel's page cache) even if the worker
is SIGKILLed right after; a ``LogIngester`` (the supervisor's, or a thread here
with one worker) moves the records into the metadata store off the hot path.
If the log cannot take the batch (full and
set to reject, or a disk error) the batch is answered 503 instead of going out
unlogged. A failed request (``Failed``) is recorded as its error is known: it
carries no prediction to lose.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping

import numpy as np

from modelyard.config import Settings
from modelyard.monitoring.feedback import FeedbackResult, FeedbackStore, parse_feedback_post
from modelyard.monitoring.feedback_outcomes import (
    DEFAULT_WAIT_S,
    OUTCOMES,
    PendingLabels,
    Waited,
    settle,
)
from modelyard.monitoring.inference_log.ingest import LogIngester
from modelyard.monitoring.inference_log.logger import InferenceLogger
from modelyard.monitoring.inference_log.policy import LogPolicy, default_policy, deployment_policy
from modelyard.monitoring.inference_log.repository import (
    InferenceLogRepository,
    LabelledLogRepository,
)
from modelyard.serving.hosting.outcomes import Answered, Failed
from modelyard.serving.hosting.served_deployment import ServedDeployment

ErrorSink = Callable[[str, dict[str, object]], None]


def open_inference_log(
    settings: Settings,
    store: InferenceLogRepository,
    worker: str,
    on_error: ErrorSink | None = None,
    *,
    ingest: bool = True,
) -> InferenceLogger:
    """The worker's logger, configured from ``settings.monitoring`` and started; without
    ``ingest``, another process (the supervisor's ``open_log_ingester``) stores its log."""
    monitoring = settings.monitoring
    logger = InferenceLogger(
        store,
        settings.resolved_wal_dir,
        worker=worker,
        default_policy=default_policy(settings.monitoring),
        when_full=monitoring.wal_when_full,
        max_wal_bytes=monitoring.wal_max_bytes,
        segment_bytes=monitoring.wal_segment_bytes,
        fsync_interval_s=monitoring.wal_fsync_interval_s,
        batch_bytes=monitoring.log_batch_bytes,
        interval_s=monitoring.log_flush_interval_s,
        on_error=on_error,
        ingest=ingest,
    )
    logger.start()
    return logger


def open_log_ingester(
    settings: Settings,
    store: InferenceLogRepository,
    follow: Callable[[], Iterable[str]],
    on_error: ErrorSink | None = None,
) -> LogIngester:
    """A started ``LogIngester`` for the workers' logs that ``follow()`` names (and orphans)."""
    monitoring = settings.monitoring
    return LogIngester(
        store,
        settings.resolved_wal_dir,
        follow=follow,
        batch_bytes=monitoring.log_batch_bytes,
        interval_s=monitoring.log_flush_interval_s,
        segment_bytes=monitoring.wal_segment_bytes,
        fsync_interval_s=monitoring.wal_fsync_interval_s,
        on_error=on_error,
    ).start()


class InferenceLogRecorder:
    """The inference log of one worker as serving sees it: outcomes in, each deployment's
    sampling policy applied, its figures out for /metrics."""

    def __init__(
        self,
        logger: InferenceLogger,
        default_policy: LogPolicy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.logger = logger
        self._default = default_policy
        self._clock = clock
        self._revisions: dict[str, int] = {}  # deployment -> revision whose policy applies

    def record(self, outcome: Answered | Failed) -> None:
        """Write ``outcome`` to the write-ahead log; raises ``OverloadedError`` or
        ``StoreError`` when the log cannot take it (a batch is then answered 503)."""
        if isinstance(outcome, Answered):
            self._record_batch(outcome)
        else:
            self._record_failure(outcome)
        self.logger.commit()

    def _record_batch(self, batch: Answered) -> None:
        requests = batch.requests
        records = [record for record, _, _ in requests]
        ts = [record.ts for record in records]
        now_ms = self._clock() * 1000.0
        matrix = isinstance(batch.model_input, np.ndarray)
        self.logger.record_batch(
            model=batch.model,
            version=batch.version,
            request_ids=[record.request_id for record in records],
            ts=ts,
            deployments=[record.deployment or batch.model for record in records],
            arms=[record.arm for record in records],
            spans=[(start, stop) for _, start, stop in requests],
            latency_ms=[now_ms - at * 1000.0 for at in ts],
            inputs=batch.model_input,
            input_names=batch.input_names if matrix else None,
            outputs=batch.outputs,
        )

    def _record_failure(self, failed: Failed) -> None:
        record = failed.record
        self.logger.record(
            request_id=record.request_id,
            deployment=record.deployment or failed.model,
            model=failed.model,
            arm=record.arm,
            version=failed.version,
            ts=record.ts,
            status=failed.status,
            latency_ms=failed.latency_s * 1000.0,
            rows=failed.rows,
            error=failed.code,
        )

    def follow(self, deployments: Mapping[str, ServedDeployment]) -> None:
        """Apply each deployment's own sampling rate and time to live when its revision moves."""
        for name, entry in deployments.items():
            if self._revisions.get(name) != entry.revision:
                config = entry.deployment.config
                policy = deployment_policy(
                    config.log_sample_rate, config.log_ttl_days, self._default
                )
                self.logger.set_policy(name, policy)
                self._revisions[name] = entry.revision

    def counts(self) -> dict[tuple[str, str], int]:
        return self.logger.counts()

    def backlog_bytes(self) -> int:
        return self.logger.stats().backlog_bytes


class FeedbackReceiver:
    """``POST /v1/feedback``: parse, then store labels idempotently (a blocking DB write),
    each reported as joined, pending, refused or deferred (``monitoring.feedback_outcomes``).

    Pending labels are waited for in this worker: ``check_pending`` (the app calls it off
    the event loop about five times a second) looks their request ids up again once
    their wait ends, and counts them ``joined_late`` or ``expired``. A worker that
    restarts forgets what it waited for; the labels themselves stay stored.
    """

    def __init__(
        self,
        log: LabelledLogRepository,
        max_items: int,
        *,
        wait_s: float = DEFAULT_WAIT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = FeedbackStore(log, wait_s=wait_s)
        self._log = log
        self._max_items = max_items
        self._clock = clock
        self._pending = PendingLabels(wait_s)
        self._lock = threading.Lock()  # posts and checks run on executor threads
        self._counts = dict.fromkeys(OUTCOMES, 0)

    def __call__(self, document: object) -> FeedbackResult:
        post = parse_feedback_post(document, max_items=self._max_items)
        now = self._clock()
        result = self._store.post(post.items, received_at=now, require_known=post.require_known)
        waiting = [
            label.request_id
            for label in result.labels
            if label.outcome == "pending" and label.request_id is not None
        ]
        with self._lock:
            for label in result.labels:
                self._counts[label.outcome] += 1
            early = self._pending.add(waiting, now)
        if early:
            self._settle(early)
        return result

    @property
    def waiting(self) -> int:
        """Request ids of pending labels still waited for."""
        with self._lock:
            return len(self._pending)

    def check_pending(self) -> None:
        """Settle the pending labels whose wait has ended (a blocking index lookup)."""
        with self._lock:
            ended = self._pending.due(self._clock())
        if ended:
            self._settle(ended)

    def _settle(self, ended: list[Waited]) -> None:
        known = self._log.known_requests({waited.request_id for waited in ended})
        joined, expired = settle(ended, known)
        with self._lock:
            self._counts["joined_late"] += joined
            self._counts["expired"] += expired

    def counts(self) -> dict[tuple[str], int]:
        """Labels by outcome, for ``modelyard_feedback_labels_total``."""
        with self._lock:
            return {(outcome,): count for outcome, count in self._counts.items()}
