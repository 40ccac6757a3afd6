"""One serving worker process: its composition root (``worker_app``), and uvicorn with the
uvloop event loop and our httptools protocol, ``http.connection.HttpConnection``
(``supervisor.Supervisor`` runs several of these).

Once the app has started (models loaded and warmed), the worker freezes its heap
(``gc.freeze``): the ~100k objects of the imports and models never die, yet every
full collection walked them, and a full collection comes every few seconds under
load (requests that wait on a feature read live through two young collections, so
their objects get promoted). Measured with ``benchmarks/features/bench_serving_features.py``:
those pauses took 60-80 ms each and set the p99 of a deployment that fetches features
at 35-60 ms; frozen, it is 7 ms.

Graceful shutdown is uvicorn's (stop accepting,
finish in-flight requests, then lifespan shutdown) plus two additions here:
readiness turns false the moment a stop signal arrives, and with
``serving.drain_delay_s`` > 0 a SIGTERM keeps serving that long first, so a load
balancer has time to see the readiness change (the Kubernetes pattern).

With ``serving.grpc_port`` set, the worker also answers the Open Inference Protocol's
gRPC service (``rpc.server.RpcServer``, the ``grpc`` extra) on the same event loop: it
starts listening once the models are warm, just before HTTP does (a port it cannot bind
fails the worker's startup), and on a stop it closes first and answers its calls in
flight before HTTP drains, so that no call outlives the models.

Every uvicorn tick (0.1 s) the worker beats its ``watchdog.Heartbeat``, stops (gracefully)
if its supervisor is gone, and checks for a model call stuck past
``model_hang_limit_s``: it logs ``model_hung`` once and reports it through the heartbeat,
for the supervisor to replace this worker. A worker whose threads are stuck in a model
could not exit normally (the interpreter joins them), so it ends with ``os._exit`` once
it has stopped serving and closed its stores.
"""

from __future__ import annotations

import gc
import importlib
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, cast

import uvicorn

from modelyard.config import Settings
from modelyard.errors import ConfigurationError
from modelyard.features.feature_store import FeatureStore
from modelyard.features.online import open_online_store
from modelyard.features.registry import FeatureRegistry
from modelyard.features.sql import SqlDefinitionRepository
from modelyard.monitoring.inference_log.policy import default_policy
from modelyard.monitoring.inference_log.sql import SqlInferenceLogRepository
from modelyard.registry import ModelRef, Registry
from modelyard.registry.sql import SqlRegistryRepository
from modelyard.routing import DeploymentStore
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.serving.feature_store import FeaturePush, StoreFeatures
from modelyard.serving.http.app import ServingApp, server_version
from modelyard.serving.http.connection import ConnectionLimits, HttpConnection
from modelyard.serving.process.watchdog import Heartbeat
from modelyard.serving.recording import (
    FeedbackReceiver,
    InferenceLogRecorder,
    open_inference_log,
)
from modelyard.serving.telemetry.jsonlog import JsonLog
from modelyard.store.artifacts import open_artifact_store
from modelyard.store.database import Database

if TYPE_CHECKING:  # the grpc extra, imported only when serving.grpc_port is set
    from modelyard.serving.rpc.server import RpcServer

GRPC_EXTRA = "pip install 'modelyard[grpc]'"
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
        http=cast(Any, partial(HttpConnection, app=app, limits=ConnectionLimits.of(serving))),
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

    def __init__(
        self,
        config: uvicorn.Config,
        app: ServingApp,
        drain_delay_s: float,
        heartbeat: Heartbeat | None = None,
        rpc: RpcServer | None = None,
    ) -> None:
        super().__init__(config)
        self._app = app
        self._rpc = rpc
        if rpc is not None:
            app.on_startup.append(rpc.start)
        self._drain_delay_s = drain_delay_s
        self._drain_until: float | None = None
        self._heartbeat = heartbeat
        # A supervised worker stops when its supervisor is gone (SIGKILLed, say): else it
        # would serve on, unwatched, holding the port against the next server.
        self._supervisor = os.getppid() if heartbeat is not None else None
        self.hung = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._app.start_draining()
        if sig == signal.SIGTERM and self._drain_delay_s > 0 and not self.should_exit:
            if self._drain_until is None:
                self._drain_until = time.monotonic() + self._drain_delay_s
            return
        super().handle_exit(sig, frame)

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets=sockets)
        gc.collect()  # what startup left over, so that none of it is frozen
        gc.freeze()  # why: the module docstring

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        if self._rpc is not None:  # why: the module docstring
            await self._rpc.stop(self.config.timeout_graceful_shutdown or 0)
        await super().shutdown(sockets=sockets)

    async def on_tick(self, counter: int) -> bool:
        now = time.monotonic()
        hung = self._app.manager.hung(now)
        if hung is not None and not self.hung:
            self._app.log.emit(
                "error",
                "model_hung",
                {"model": hung.name, "version": hung.version, "worker_healthy": False},
            )
            self._app.log.flush()
        self.hung = hung is not None
        if self._heartbeat is not None:
            self._heartbeat.beat(now, hung=self.hung)
            if os.getppid() != self._supervisor and not self.should_exit:
                self._app.log.emit("error", "supervisor_gone", {"supervisor": self._supervisor})
                super().handle_exit(signal.SIGTERM, None)
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


@contextmanager
def worker_app(
    settings: Settings,
    refs: Sequence[ModelRef | str],
    *,
    trusted: bool = False,
    metrics_dir: Path | None = None,
    worker: str = "0",
    ingest_log: bool = True,
) -> Iterator[ServingApp]:
    """The composition root of a serving worker: its database, registry, deployments,
    JSON log and inference log are built here, once, and handed to the app as ports;
    all of them are closed when the block ends. Without ``ingest_log`` the inference log
    is only written here, for the supervisor to store."""
    db = Database(settings.resolved_database_url)
    registry = Registry(
        SqlRegistryRepository(db),
        open_artifact_store(
            settings.resolved_artifacts_url, cache_dir=settings.resolved_artifacts_cache
        ),
    )
    log = JsonLog(
        settings.resolved_log_path,
        worker=worker,
        rotate_bytes=settings.serving.log_rotate_bytes,
    )
    features = FeatureStore(
        FeatureRegistry(SqlDefinitionRepository(db)), open_online_store(settings), settings
    )
    logger = None
    try:
        recorder = feedback = None
        if settings.monitoring.log_inferences:
            labelled_log = SqlInferenceLogRepository(db)
            logger = open_inference_log(
                settings,
                labelled_log,
                worker,
                on_error=lambda event, fields: log.emit("error", event, fields),
                ingest=ingest_log,
            )
            recorder = InferenceLogRecorder(logger, default_policy(settings.monitoring))
            feedback = FeedbackReceiver(
                labelled_log,
                settings.monitoring.feedback_max_items,
                wait_s=settings.monitoring.feedback_pending_s,
            )
        yield ServingApp(
            settings.serving,
            refs,
            versions=registry,
            log=log,
            deployments=DeploymentStore(SqlDeploymentRepository(db), registry),
            features=StoreFeatures(features.registry, features.online),
            inference_log=recorder,
            feedback=feedback,
            feature_push=FeaturePush(features),
            ui=partial(_dashboard, settings) if settings.serving.ui else None,
            trusted=trusted,
            metrics_dir=metrics_dir,
        )
    finally:
        if logger is not None:
            logger.close()  # with ingest_log: drains what the store has not taken yet
        features.close()
        db.dispose()


def run_worker(
    settings: Settings,
    refs: Sequence[ModelRef | str],
    *,
    trusted: bool = False,
    sockets: list[Any] | None = None,
    metrics_dir: Path | None = None,
    worker: str = "0",
    ingest_log: bool = True,
    heartbeat: Heartbeat | None = None,
) -> None:
    """Serve in this process until a stop signal; blocking (see ``worker_app``).
    ``heartbeat``: where the supervisor watches this worker (see ``watchdog``)."""
    limit_native_threads(settings.serving.intra_op_threads)
    with worker_app(
        settings,
        refs,
        trusted=trusted,
        metrics_dir=metrics_dir,
        worker=worker,
        ingest_log=ingest_log,
    ) as app:
        server = DrainingServer(
            uvicorn_config(app, settings),
            app,
            drain_delay(settings),
            heartbeat,
            rpc_server(app, settings),
        )
        server.run(sockets=sockets)
    if app.manager.calls_running():
        os._exit(0)  # why: the module docstring (threads stuck in a model)


def rpc_server(app: ServingApp, settings: Settings) -> RpcServer | None:
    """The worker's gRPC listener, when ``serving.grpc_port`` is set."""
    if not settings.serving.grpc_port:
        return None
    try:
        from modelyard.serving.rpc.server import RpcServer
    except ImportError as error:
        raise ConfigurationError(
            f"serving.grpc_port is set but gRPC is not installed ({error}); {GRPC_EXTRA}"
        ) from error
    return RpcServer(app, settings.serving, server_version=server_version())


def _dashboard(settings: Settings, metrics: Callable[[], bytes]) -> Any:
    """The dashboard's ASGI app, imported here, on its first request: a worker nobody opens
    the dashboard on never loads Starlette and the pages' modules."""
    from modelyard.ui import create_app

    return create_app(settings, metrics=metrics)
