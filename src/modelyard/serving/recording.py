"""Connecting a serving worker to the durable inference log (monitoring) and feedback.

Every answered prediction is recorded from the ``on_batch`` seam: after the
model call and *before* any response of the batch is sent, the batch's records
go to the worker's write-ahead log in one ``os.write``. A response a client
received is therefore on disk (in the kernel's page cache) even if the worker
is SIGKILLed right after; a ``LogIngester`` (the supervisor's, or a thread here
with one worker) moves the records into the metadata store off the hot path.
If the log cannot take the batch (full and
set to reject, or a disk error) the batch is answered 503 instead of going out
unlogged. Failed requests are recorded from ``on_failure``, after their error
went out: they carry no prediction to lose.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import numpy as np

from modelyard.config import Settings
from modelyard.monitoring.feedback import FeedbackResult, FeedbackStore, parse_feedback_body
from modelyard.monitoring.inference_log.ingest import LogIngester
from modelyard.monitoring.inference_log.logger import InferenceLogger
from modelyard.monitoring.inference_log.policy import LogPolicy
from modelyard.monitoring.inference_log.sql import SqlInferenceLogRepository
from modelyard.routing.deployment import DeploymentConfig
from modelyard.serving.hosting.hooks import BatchEvent, InferenceEvent
from modelyard.store.database import Database

ErrorSink = Callable[[str, dict[str, object]], None]


def default_log_policy(settings: Settings) -> LogPolicy:
    """The sampling rate and time to live of the monitoring settings."""
    monitoring = settings.monitoring
    ttl = monitoring.log_ttl_days * 86_400 if monitoring.log_ttl_days > 0 else None
    return LogPolicy(sample_rate=monitoring.log_sample_rate, ttl_s=ttl)


def deployment_log_policy(config: DeploymentConfig, default: LogPolicy) -> LogPolicy:
    """A deployment's own sampling rate and time to live where it sets them (0 days: forever)."""
    rate = default.sample_rate if config.log_sample_rate is None else config.log_sample_rate
    if config.log_ttl_days is None:
        ttl = default.ttl_s
    else:
        ttl = config.log_ttl_days * 86_400 if config.log_ttl_days > 0 else None
    return LogPolicy(sample_rate=rate, ttl_s=ttl)


def open_inference_log(
    settings: Settings,
    db: Database,
    worker: str,
    on_error: ErrorSink | None = None,
    *,
    ingest: bool = True,
) -> InferenceLogger:
    """The worker's logger, configured from ``settings.monitoring`` and started; without
    ``ingest``, another process (the supervisor's ``open_log_ingester``) stores its log."""
    monitoring = settings.monitoring
    logger = InferenceLogger(
        SqlInferenceLogRepository(db),
        settings.resolved_wal_dir,
        worker=worker,
        default_policy=default_log_policy(settings),
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
    db: Database,
    follow: Callable[[], Iterable[str]],
    on_error: ErrorSink | None = None,
) -> LogIngester:
    """A started ``LogIngester`` for the workers' logs that ``follow()`` names (and orphans)."""
    monitoring = settings.monitoring
    return LogIngester(
        SqlInferenceLogRepository(db),
        settings.resolved_wal_dir,
        follow=follow,
        batch_bytes=monitoring.log_batch_bytes,
        interval_s=monitoring.log_flush_interval_s,
        segment_bytes=monitoring.wal_segment_bytes,
        fsync_interval_s=monitoring.wal_fsync_interval_s,
        on_error=on_error,
    ).start()


class InferenceLogHooks:
    """The serving hooks that feed one ``InferenceLogger``."""

    def __init__(self, logger: InferenceLogger, clock: Callable[[], float] = time.time) -> None:
        self.logger = logger
        self._clock = clock

    def on_batch(self, event: BatchEvent) -> None:
        """Record the batch's requests, then write them all before anyone is answered."""
        requests = event.requests
        infos = [info for info, _, _ in requests]
        ts = [info.ts for info in infos]
        now_ms = self._clock() * 1000.0
        matrix = isinstance(event.model_input, np.ndarray)
        self.logger.record_batch(
            model=event.model,
            version=event.version,
            request_ids=[info.request_id for info in infos],
            ts=ts,
            deployments=[info.deployment or event.model for info in infos],
            arms=[info.arm for info in infos],
            spans=[(start, stop) for _, start, stop in requests],
            latency_ms=[now_ms - at * 1000.0 for at in ts],
            inputs=event.model_input,
            input_names=event.input_names if matrix else None,
            outputs=event.outputs,
        )
        self.logger.commit()  # raises OverloadedError/StoreError: the batch is answered 503

    def on_failure(self, event: InferenceEvent) -> None:
        """Record a failed inference request (successes were recorded with their batch)."""
        self.logger.record(
            request_id=event.request_id,
            deployment=event.deployment or event.model,
            model=event.model,
            arm=event.arm,
            version=int(event.version) if event.version.isdigit() else 0,
            ts=event.ts,
            status=event.status,
            latency_ms=event.duration_s * 1000.0,
            rows=event.rows,
            error=event.code,
        )
        self.logger.commit()


class FeedbackReceiver:
    """``POST /v1/feedback``: parse, then store labels idempotently (a blocking DB write)."""

    def __init__(self, db: Database, max_items: int) -> None:
        self._store = FeedbackStore(SqlInferenceLogRepository(db))
        self._max_items = max_items

    def __call__(self, document: object) -> FeedbackResult:
        return self._store.post(parse_feedback_body(document, max_items=self._max_items))
