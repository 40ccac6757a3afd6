"""Running the app in one process: uvicorn with the uvloop event loop and our
httptools protocol, ``connection.HttpConnection`` (``workers.Supervisor`` runs
several of these).

Graceful shutdown is uvicorn's (stop accepting,
finish in-flight requests, then lifespan shutdown) plus two additions here:
readiness turns false the moment a stop signal arrives, and with
``serving.drain_delay_s`` > 0 a SIGTERM keeps serving that long first, so a load
balancer has time to see the readiness change (the Kubernetes pattern).
"""

from __future__ import annotations

import importlib
import signal
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any, cast

import uvicorn

from modelyard.config import Settings
from modelyard.monitoring.inference_log.logger import InferenceLogger
from modelyard.registry import ModelRef
from modelyard.serving.http.app import ServingApp
from modelyard.serving.http.connection import HttpConnection
from modelyard.serving.recording import (
    FeedbackReceiver,
    InferenceLogHooks,
    open_inference_log,
)
from modelyard.yard import Yard

STARTUP_FAILURE = 3  # uvicorn's exit status when the lifespan startup fails


def drain_delay(settings: Settings) -> float:
    return settings.serving.drain_delay_s


def uvicorn_config(app: ServingApp, settings: Settings) -> uvicorn.Config:
    serving = settings.serving
    return uvicorn.Config(
        app,
        host=serving.host,
        port=serving.port,
        loop="uvloop",
        # Our own httptools protocol around the app (see ``connection``); uvicorn calls it
        # as it would a protocol class.
        http=cast(Any, partial(HttpConnection, app=app)),
        ws="none",
        lifespan="on",
        access_log=False,  # our JSON log has one line per request already
        log_level="warning",
        server_header=False,
        proxy_headers=False,  # no X-Forwarded-* rewriting: nothing here reads the client address
        backlog=2048,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=int(serving.request_timeout_s + drain_delay(settings) + 5),
    )


class DrainingServer(uvicorn.Server):
    """uvicorn's server, telling the app to report not-ready as soon as a stop begins."""

    def __init__(self, config: uvicorn.Config, app: ServingApp, drain_delay_s: float) -> None:
        super().__init__(config)
        self._app = app
        self._drain_delay_s = drain_delay_s
        self._drain_until: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._app.start_draining()
        if sig == signal.SIGTERM and self._drain_delay_s > 0 and not self.should_exit:
            if self._drain_until is None:
                self._drain_until = time.monotonic() + self._drain_delay_s
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._drain_until is not None and time.monotonic() >= self._drain_until:
            self._drain_until = None
            super().handle_exit(signal.SIGTERM, None)
        return await super().on_tick(counter)


def limit_native_threads(threads: int) -> None:
    """Cap OpenMP/BLAS pools (scikit-learn, LightGBM) so workers don't oversubscribe cores;
    onnxruntime sessions get ``intra_op_threads`` directly."""
    if threads <= 0:
        return
    try:  # optional: ships with scikit-learn, which the pools belong to
        threadpoolctl: Any = importlib.import_module("threadpoolctl")
    except ImportError:
        return
    threadpoolctl.threadpool_limits(limits=threads)


def attach_inference_log(
    app: ServingApp, settings: Settings, yard: Yard, worker: str, *, ingest: bool
) -> InferenceLogger:
    """Log ``app``'s inferences and take its feedback; returns the started logger (close it
    after the server stops). Without ``ingest``, another process stores the log."""
    inference_log = open_inference_log(
        settings,
        yard.db,
        worker,
        on_error=lambda event, fields: app.log.emit("error", event, fields),
        ingest=ingest,
    )
    app.inference_log = inference_log
    hooks = InferenceLogHooks(inference_log)
    app.on_batch.append(hooks.on_batch)
    app.on_failure.append(hooks.on_failure)
    app.feedback = FeedbackReceiver(yard.db, settings.monitoring.feedback_max_items)
    return inference_log


def run_worker(
    settings: Settings,
    refs: Sequence[ModelRef | str],
    *,
    trusted: bool = False,
    sockets: list[Any] | None = None,
    metrics_dir: Path | None = None,
    worker: str = "0",
    ingest_log: bool = True,
) -> None:
    """Serve in this process until a stop signal; blocking. Without ``ingest_log`` the
    inference log is only written here, for the supervisor to store."""
    limit_native_threads(settings.serving.intra_op_threads)
    yard = Yard(settings)
    inference_log = None
    try:
        app = ServingApp(
            settings, yard, refs, trusted=trusted, metrics_dir=metrics_dir, worker=worker
        )
        if settings.monitoring.log_inferences:
            inference_log = attach_inference_log(app, settings, yard, worker, ingest=ingest_log)
        server = DrainingServer(uvicorn_config(app, settings), app, drain_delay(settings))
        server.run(sockets=sockets)
    finally:
        if inference_log is not None:
            inference_log.close()  # with ingest_log: drains what the store has not taken yet
        yard.close()
