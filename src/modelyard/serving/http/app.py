"""The ASGI application of one serving worker: routing, auth, body limits, the request log.

A raw ASGI callable rather than Starlette or FastAPI. The request path here is
the cost that matters (BENCHMARKING.md: the model takes ~7 us, a FastAPI
endpoint around it ~250 us): routing is a dict lookup, the body stays bytes
until orjson parses it, validation writes straight into numpy, and the response
is one orjson call. Everything the frameworks would add per request (request
objects, dependency injection, pydantic models, middleware stacks) is skipped.

``handle`` answers one request given its method, path, headers and body.
``modelyard serve`` calls it straight from the HTTP parser
(``connection.HttpConnection``); ``__call__`` wraps it as an ASGI app, for any
ASGI server and for the tests. Inference requests go through
``pipeline.InferencePipeline``.

Per request: a request id (``x-request-id``, honoured when sane), the answering
version (``x-model-version``), a latency/status sample for ``/metrics`` and one
JSON log line. The app is built by the worker's composition root
(``process.worker``), which hands it its ports: where versions come from, the
deployments to follow, and the inference log.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Protocol

import orjson

from modelyard.config.serving import ServingSettings
from modelyard.errors import ModelyardError
from modelyard.registry import ModelRef, parse_ref
from modelyard.serving.hosting.manager import ModelManager
from modelyard.serving.hosting.outcomes import InferenceRecorder
from modelyard.serving.hosting.policy import lag_average
from modelyard.serving.hosting.runtime import VersionSource
from modelyard.serving.hosting.served_deployment import (
    DeploymentSource,
    FeatureSource,
    ServedDeployment,
)
from modelyard.serving.hosting.shadow import ShadowHook, ShadowMirror
from modelyard.serving.http.cors import CorsPolicy
from modelyard.serving.http.endpoints import Endpoints, FeedbackPort
from modelyard.serving.http.hosts import HostAllowList
from modelyard.serving.http.intake import (
    Disconnected,
    Receive,
    check_bearer,
    check_media_type,
    read_json_body,
)
from modelyard.serving.http.mount import Asgi, MountedApp
from modelyard.serving.http.openapi import build_openapi
from modelyard.serving.http.routes import ANY_HOST, GUARDED, QUIET, WRITE, Router
from modelyard.serving.pipeline import JSON, Call, InferencePipeline, Reply
from modelyard.serving.telemetry.jsonlog import JsonLog
from modelyard.serving.telemetry.metrics import (
    MONITORING_TEXT,
    GaugeSample,
    MetricsExchange,
    ServingMetrics,
    merge,
    render,
)
from modelyard.serving.wire.oip import example_requests
from modelyard.serving.wire.requestids import RequestIds
from modelyard.serving.wire.status import error_body, error_headers, http_status

Scope = MutableMapping[str, Any]
Headers = list[tuple[bytes, bytes]]
Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]

_HEARTBEAT_S = 0.05
_FLUSH_S = 0.2
_PUBLISH_S = 1.0


# A request's answer, ready to write: its call, its endpoint (empty when the path named
# none), the reply, the response headers, and time.perf_counter() when it came in. A
# plain tuple: one fewer object built per request than a class (~400 instructions).
Answer = tuple[Call, str, Reply, Headers, float]


class InferenceLog(InferenceRecorder, Protocol):
    """What the app needs of the inference log besides recording: its figures for
    /metrics, and each served deployment, whose own sampling rate and time to live apply."""

    def follow(self, deployments: Mapping[str, ServedDeployment]) -> None: ...

    def counts(self) -> dict[tuple[str, str], int]: ...

    def backlog_bytes(self) -> int: ...


def server_version() -> str:
    try:
        return version("modelyard")
    except PackageNotFoundError:
        return "0.0.0"


class ServingApp:
    """The ASGI app serving ``refs`` (resolved and loaded through ``versions``), and every
    deployment of ``deployments``, in this process.

    ``inference_log`` records every outcome (None: not logging); ``feedback`` stores
    posted labels (a blocking call, run off the event loop; None: no feedback route);
    ``features`` reads the features deployments fetch, ``feature_push`` applies pushed
    events (None: no feature store).
    ``ui`` builds the dashboard's ASGI app, answering ``/ui``, given this server's
    ``/metrics`` text (its live figures, shadow agreement); None: no dashboard.
    ``on_shadow`` hooks see each shadow comparison (see ``hosting.shadow``).
    ``start_draining()`` turns readiness off (the server calls it on SIGTERM).
    """

    def __init__(
        self,
        serving: ServingSettings,
        refs: Sequence[ModelRef | str],
        *,
        versions: VersionSource,
        log: JsonLog,
        deployments: DeploymentSource | None = None,
        features: FeatureSource | None = None,
        inference_log: InferenceLog | None = None,
        feedback: FeedbackPort | None = None,
        feature_push: Callable[[object], dict[str, Any]] | None = None,
        ui: Callable[[Callable[[], bytes]], Asgi] | None = None,
        trusted: bool = False,
        metrics_dir: Path | None = None,
    ) -> None:
        self.metrics = ServingMetrics()
        self.log = log
        self.lag_s = 0.0
        parsed = [parse_ref(r) if isinstance(r, str) else r for r in refs]
        self.on_shadow: list[ShadowHook] = []
        self.feedback = feedback
        self.feature_push = feature_push
        self.ui = (
            None
            if ui is None
            else MountedApp(lambda: ui(self.metrics_text), (serving.host, serving.port))
        )
        self.inference_log = inference_log
        self.manager = ModelManager(
            versions,
            parsed,
            serving,
            trusted=trusted,
            metrics=self.metrics,
            log=self.log,
            lag=lambda: self.lag_s,
            recorder=inference_log,
            deployments=deployments,
            features=features,
        )
        self.table = self.manager.table
        self.shadows = ShadowMirror(
            self.metrics, self.log, self.on_shadow, timeout_s=serving.request_timeout_s
        )
        self.pipeline = InferencePipeline(
            self.table,
            self.shadows,
            inference_log,
            lambda event, fields: self.log.emit("error", event, fields),
        )
        self.draining = False
        self.started = False
        self.inflight = 0
        self._router = Router()
        self._version = server_version()
        self._handlers = Endpoints(self, server_version=self._version).handlers
        self._exchange = MetricsExchange(metrics_dir)
        self._ids = RequestIds()
        token = serving.token
        self._token = f"Bearer {token}".encode() if token else None
        self._hosts = HostAllowList.from_settings(serving)
        self._cors = CorsPolicy(serving.cors_origins)
        self.max_body_bytes = serving.max_body_bytes
        self._timeout = serving.request_timeout_s
        self._poll_s = serving.poll_interval_s
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._openapi: tuple[list[str], bytes] | None = None
        self._published = 0.0
        # Other listeners on this event loop (the gRPC server, ``serving.rpc``): started
        # once the models are warm and before HTTP listens, so that a worker that answers
        # HTTP answers every protocol.
        self.on_startup: list[Callable[[], Awaitable[None]]] = []

    # -- state read by the endpoints ------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.started and not self.draining and self.table.ready

    def start_draining(self) -> None:
        """Report not-ready from now on; in-flight and new requests are still answered."""
        if not self.draining:
            self.draining = True
            self.log.emit("info", "draining", {"inflight": self.inflight})
            self.log.flush()

    def metrics_text(self) -> bytes:
        now = time.time()
        own = self.metrics.snapshot(self._gauges(), now)
        self._exchange.publish(own)
        text = render(merge(self._exchange.gather(own), now))
        directory = self._exchange.directory
        if directory is not None:  # the server's monitoring pass: live metrics and drift
            with contextlib.suppress(FileNotFoundError):
                text += (directory / MONITORING_TEXT).read_bytes()
        return text

    def openapi_json(self) -> bytes:
        """The OpenAPI document, rebuilt when the loaded versions change."""
        runtimes = self.table.runtimes()
        versions = sorted({r.version_text for r in runtimes}, key=int)
        key = [*self.table.names, "/", *versions]  # a new deployment may reuse versions
        if self._openapi is None or self._openapi[0] != key:
            first = runtimes[0] if runtimes else None
            examples = (
                example_requests(first.signature, first.validator.matrix_datatype, first.example)
                if first is not None and len(self.table.names) == 1
                else None
            )
            document = build_openapi(self.table.names, versions, self._version, examples)
            self._openapi = (key, orjson.dumps(document))
        return self._openapi[1]

    def _gauges(self) -> dict[str, list[GaugeSample]]:
        runtimes = self.table.runtimes() + self.table.retiring
        logger = self.inference_log
        if logger is not None:
            self.metrics.log_records = logger.counts()
        if self.feedback is not None:
            self.metrics.feedback_labels = self.feedback.counts()
        return {
            "modelyard_inference_log_backlog_bytes": (
                [((), float(logger.backlog_bytes()))] if logger is not None else []
            ),
            "modelyard_queue_rows": [
                ((r.name, r.version_text), float(r.batcher.queued_rows)) for r in runtimes
            ],
            "modelyard_inflight_requests": [((), float(self.inflight))],
            "modelyard_event_loop_lag_seconds": [((), self.lag_s)],
            "modelyard_model_version": [
                *(
                    ((s.text, s.ref.name), float(s.runtime.version))
                    for s in self.table.served
                    if s.runtime is not None
                ),
                *(
                    ((f"deployment:{d.name}", d.champion.name), float(d.champion.version))
                    for d in self.table.deployments.values()
                ),
            ],
            "modelyard_ready": [((), 1.0 if self.ready else 0.0)],
            "modelyard_workers": [((), 1.0)],
        }

    # -- ASGI -------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if scope.get("query_string") and path.startswith("/ui"):  # the dashboard reads queries
            path = f"{path}?{scope['query_string'].decode('latin-1')}"
        answer = await self.handle(scope["method"], path, scope["headers"], receive)
        if answer is None:
            return
        reply, headers = answer[2], answer[3]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.payload})
        self.record(answer)

    async def handle(
        self, method: str, path: str, headers: Headers, body: bytes | Receive
    ) -> Answer | None:
        """Answer one request. ``headers`` have lower-case names; ``body`` is the whole body
        (its size already checked against ``max_body_bytes``) or the ASGI ``receive`` to
        read it from. None: the client left before its body arrived.

        Call ``record`` once the answer is written."""
        started = time.perf_counter()
        incoming_id = content_type = authorization = binary_header = host = origin = None
        content_length = -1
        for name, value in headers:
            if name == b"x-request-id":
                incoming_id = value
            elif name == b"content-type":
                content_type = value
            elif name == b"content-length":
                content_length = int(value) if value.isdigit() else -1
            elif name == b"authorization":
                authorization = value
            elif name == b"host":
                host = value
            elif name == b"origin":
                origin = value
            elif name == b"inference-header-content-length":
                binary_header = value  # the binary tensor extension: JSON, then tensor bytes
        now = time.monotonic()  # the batcher's clock, for deadlines
        call = Call(
            self._ids.take(incoming_id),
            method,
            path,
            headers,
            now,
            time.time(),
            now + self._timeout,
            binary_header,
        )
        endpoint = ""
        self.inflight += 1
        cors = origin is not None and self._cors.allows(origin)
        try:
            if method == "OPTIONS" and cors:
                route = self._router.find(path)
                endpoint = route.name
                self._hosts.check(host)
                assert origin is not None
                reply = Reply(
                    200, b"", b"text/plain", self._cors.preflight_headers(origin, route.methods)
                )
            else:
                route = self._router.resolve(method, path)
                endpoint = route.name
                # a Host already seen and allowed costs a dict lookup, not a call
                if endpoint not in ANY_HOST and not self._hosts.seen.get(host):
                    self._hosts.check(host)
                # the token, then the body (inline: a coroutine more costs every request)
                if self._token is not None and endpoint in GUARDED:
                    check_bearer(authorization, self._token)
                binary = binary_header is not None
                if method not in WRITE:
                    body = b""
                elif isinstance(body, bytes):
                    if content_type != JSON:  # the usual type, exactly, needs no parsing
                        check_media_type(content_type, binary, not body, origin is not None)
                else:
                    body = await read_json_body(
                        body,
                        content_type,
                        content_length,
                        self.max_body_bytes,
                        binary,
                        origin is not None,
                    )
                reply = await self._handlers[endpoint](route, call, body)
        except ModelyardError as error:
            status = http_status(error)
            reply = Reply(
                status,
                error_body(error.message, error.code, call.request_id),
                JSON,
                error_headers(error, status),
                code=error.code,
                error=error.detail,
            )
        except Disconnected:
            return None
        except Exception as error:  # a bug: answer 500 with the request id, log the trace
            message = f"internal error; quote request id {call.request_id}"
            reply = Reply(
                500,
                error_body(message, "internal_error", call.request_id),
                code="internal_error",
                error=f"{type(error).__name__}: {error}",
            )
            self.log.emit(
                "error",
                "internal_error",
                {"request_id": call.request_id, "traceback": traceback.format_exc()},
            )
        finally:
            self.inflight -= 1
        response_headers = [
            (b"content-type", reply.media),
            (b"content-length", b"%d" % len(reply.payload)),
            (b"x-request-id", call.request_id.encode()),
        ]
        if reply.version:
            response_headers.append((b"x-model-version", reply.version.encode()))
        if reply.extra:
            response_headers.extend(reply.extra)
        if cors and method != "OPTIONS":
            assert origin is not None
            response_headers.extend(self._cors.headers(origin))
        return call, endpoint, reply, response_headers, started

    def record(self, answer: Answer) -> None:
        """Count a written answer in /metrics and the JSON log."""
        call, endpoint, reply, _, started = answer
        status = reply.status
        elapsed = time.perf_counter() - started
        self.metrics.request(reply.model, reply.version, status, elapsed, reply.code)
        if status >= 400 or endpoint not in QUIET:
            level = "info" if status < 400 else ("warning" if status < 500 else "error")
            fields: dict[str, Any] = {
                "request_id": call.request_id,
                "method": call.method,
                "path": call.path,
                "status": status,
                "model": reply.model,
                "version": reply.version,
                "rows": reply.rows,
                "duration_ms": round(elapsed * 1000, 3),
            }
            if reply.code is not None:
                fields["code"] = reply.code
                fields["error"] = reply.error
            self.log.emit(level, "request", fields, ts=call.ts)

    # -- lifecycle --------------------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as error:
                    text = error.message if isinstance(error, ModelyardError) else repr(error)
                    self.log.emit("error", "startup_failed", {"error": text})
                    self.log.flush()
                    await send({"type": "lifespan.startup.failed", "message": text})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        """Load and warm every model, then start following the registry."""
        self._loop = asyncio.get_running_loop()
        await self.manager.load_all()
        for start in self.on_startup:
            await start()
        self.started = True
        self._tasks = [
            asyncio.create_task(self._every(self._poll_s, self._poll)),
            asyncio.create_task(self._heartbeat()),
            asyncio.create_task(self._every(_FLUSH_S, self._housekeeping)),
        ]
        self.log.emit(
            "info",
            "worker_ready",
            {"models": {s.text: s.runtime.version for s in self.table.served if s.runtime}},
        )
        self.log.flush()

    async def shutdown(self) -> None:
        """Stop background work and flush logs and metrics (requests are already drained)."""
        self.draining = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self.manager.close()
        self._exchange.publish(self.metrics.snapshot(self._gauges(), time.time()))
        self.log.emit("info", "worker_stopped", {})
        self.log.close()

    async def _every(self, interval: float, job: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await job()
            except Exception as error:  # background work must keep going
                self.log.emit(
                    "error",
                    "background_error",
                    {"job": job.__name__, "error": f"{type(error).__name__}: {error}"},
                )

    async def _poll(self) -> None:
        await self.manager.poll_once()

    async def _housekeeping(self) -> None:
        self.log.flush()
        self.manager.retire_idle()
        if self.inference_log is not None:
            self.inference_log.follow(self.table.deployments)
        if self.feedback is not None and self.feedback.waiting:
            await asyncio.get_running_loop().run_in_executor(None, self.feedback.check_pending)
        now = time.time()
        if self._exchange.directory is not None and now - self._published >= _PUBLISH_S:
            self._published = now
            self._exchange.publish(self.metrics.snapshot(self._gauges(), now))

    async def _heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + _HEARTBEAT_S
            await asyncio.sleep(_HEARTBEAT_S)
            self.lag_s = lag_average(self.lag_s, loop.time() - expected)
