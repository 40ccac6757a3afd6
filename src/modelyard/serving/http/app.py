"""The ASGI application: the composition root of one serving worker process.

A raw ASGI callable rather than Starlette or FastAPI. The request path here is
the cost that matters (BENCHMARKING.md: the model takes ~7 us, a FastAPI
endpoint around it ~250 us): routing is a dict lookup, the body stays bytes
until orjson parses it, validation writes straight into numpy, and the response
is one orjson call. Everything the frameworks would add per request (request
objects, dependency injection, pydantic models, middleware stacks) is skipped.

``handle`` answers one request given its method, path, headers and body.
``modelyard serve`` calls it straight from the HTTP parser
(``connection.HttpConnection``); ``__call__`` wraps it as an ASGI app, for any
ASGI server and for the tests.

Per request: a request id (``x-request-id``, honoured when sane), the answering
version (``x-model-version``), a latency/status sample for ``/metrics``, one
JSON log line, and then the ``on_response`` hooks (see ``hooks``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import traceback
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import orjson

from modelyard.config import Settings
from modelyard.errors import ModelyardError
from modelyard.monitoring.feedback import FeedbackResult
from modelyard.monitoring.inference_log.logger import InferenceLogger
from modelyard.registry import ModelRef, parse_ref
from modelyard.routing import DeploymentStore
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.serving.hosting.hooks import BatchHook, InferenceEvent, ResponseHook
from modelyard.serving.hosting.manager import ModelManager
from modelyard.serving.hosting.policy import lag_average
from modelyard.serving.hosting.shadow import ShadowHook, ShadowMirror
from modelyard.serving.http.endpoints import JSON, Endpoints, Exchange
from modelyard.serving.http.intake import (
    Disconnected,
    Receive,
    check_bearer,
    check_media_type,
    read_json_body,
)
from modelyard.serving.http.openapi import build_openapi
from modelyard.serving.http.requestids import RequestIds
from modelyard.serving.http.routes import GUARDED, QUIET, WRITE, Router
from modelyard.serving.http.status import error_body, error_headers, http_status
from modelyard.serving.recording import default_log_policy, deployment_log_policy
from modelyard.serving.telemetry.jsonlog import JsonLog
from modelyard.serving.telemetry.metrics import (
    GaugeSample,
    MetricsExchange,
    ServingMetrics,
    merge,
    render,
)
from modelyard.serving.wire.oip import example_requests
from modelyard.yard import Yard

Scope = MutableMapping[str, Any]
Headers = list[tuple[bytes, bytes]]
Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]

# Written by ``monitor_loop.MonitorLoop`` into the metrics directory, appended to /metrics.
MONITORING_TEXT = "monitoring.prom"
_HEARTBEAT_S = 0.05
_FLUSH_S = 0.2
_PUBLISH_S = 1.0


@dataclass(slots=True)
class Answer:
    """A request's answer, ready to write: status, headers and body."""

    exchange: Exchange
    status: int
    headers: Headers
    payload: bytes
    started: float  # time.perf_counter() when the request came in


def server_version() -> str:
    try:
        return version("modelyard")
    except PackageNotFoundError:
        return "0.0.0"


def log_path(settings: Settings) -> Path | str:
    """Where the JSON log goes: ``serving.log_path``, else ``<home>/logs/serving.jsonl``."""
    configured = settings.serving.log_path
    return configured if configured is not None else settings.home / "logs" / "serving.jsonl"


class ServingApp:
    """The ASGI app serving ``refs`` from ``yard``'s registry, and every deployment of its
    deployment store, in this process.

    ``on_batch``, ``on_response``, ``on_failure`` and ``on_shadow`` are the seams for
    inference logging (see ``hooks``).
    ``start_draining()`` turns readiness off (the server calls it on SIGTERM).
    """

    def __init__(
        self,
        settings: Settings,
        yard: Yard,
        refs: Sequence[ModelRef | str],
        *,
        trusted: bool = False,
        metrics_dir: Path | None = None,
        worker: str = "0",
    ) -> None:
        serving = settings.serving
        self.settings = settings
        self.metrics = ServingMetrics()
        self.log = JsonLog(log_path(settings), worker=worker)
        self.lag_s = 0.0
        parsed = [parse_ref(r) if isinstance(r, str) else r for r in refs]
        self.on_batch: list[BatchHook] = []
        self.on_response: list[ResponseHook] = []
        self.on_failure: list[ResponseHook] = []
        self.on_shadow: list[ShadowHook] = []
        self.feedback: Callable[[object], FeedbackResult] | None = None
        # The inference log: its counts and backlog go to /metrics, and each deployment's
        # sampling rate and time to live to it (None: not logging).
        self.inference_log: InferenceLogger | None = None
        self._log_policies: dict[str, int] = {}  # deployment -> revision applied
        self.manager = ModelManager(
            yard,
            parsed,
            serving,
            trusted=trusted,
            metrics=self.metrics,
            log=self.log,
            lag=lambda: self.lag_s,
            batch_hooks=self.on_batch,
            deployments=DeploymentStore(SqlDeploymentRepository(yard.db), yard.registry),
        )
        self.table = self.manager.table
        self.shadows = ShadowMirror(
            self.metrics, self.log, self.on_shadow, timeout_s=serving.request_timeout_s
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
        self.max_body_bytes = serving.max_body_bytes
        self._timeout = serving.request_timeout_s
        self._poll_s = serving.poll_interval_s
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._openapi: tuple[list[str], bytes] | None = None
        self._published = 0.0

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
        return {
            "modelyard_inference_log_backlog_bytes": (
                [((), float(logger.stats().backlog_bytes))] if logger is not None else []
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
        answer = await self.handle(scope["method"], scope["path"], scope["headers"], receive)
        if answer is None:
            return
        await send(
            {"type": "http.response.start", "status": answer.status, "headers": answer.headers}
        )
        await send({"type": "http.response.body", "body": answer.payload})
        self.record(answer)

    async def handle(
        self, method: str, path: str, headers: Headers, body: bytes | Receive
    ) -> Answer | None:
        """Answer one request. ``headers`` have lower-case names; ``body`` is the whole body
        (its size already checked against ``max_body_bytes``) or the ASGI ``receive`` to
        read it from. None: the client left before its body arrived.

        Call ``record`` once the answer is written."""
        started = time.perf_counter()
        incoming_id = content_type = authorization = None
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
        now = time.monotonic()  # the batcher's clock, for deadlines
        ex = Exchange(
            self._ids.take(incoming_id), method, path, now, time.time(), now + self._timeout
        )
        ex.headers = headers
        self.inflight += 1
        try:
            route = self._router.resolve(method, path)
            ex.endpoint = route.name
            if self._token is not None and route.name in GUARDED:
                check_bearer(authorization, self._token)
            if route.methods != WRITE:
                body = b""
            elif isinstance(body, bytes):
                check_media_type(content_type)
            else:
                body = await read_json_body(body, content_type, content_length, self.max_body_bytes)
            status, payload, media, extra = await self._handlers[route.name](route, ex, body)
        except ModelyardError as error:
            status = http_status(error)
            ex.code, ex.error = error.code, error.message
            payload, media = error_body(error.message, error.code), JSON
            extra = error_headers(error, status)
        except Disconnected:
            return None
        except Exception as error:  # a bug: answer 500 with the request id, log the trace
            status, ex.code = 500, "internal_error"
            ex.error = f"{type(error).__name__}: {error}"
            message = f"internal error; quote request id {ex.request_id}"
            payload, media, extra = error_body(message, "internal_error"), JSON, []
            self.log.emit(
                "error",
                "internal_error",
                {"request_id": ex.request_id, "traceback": traceback.format_exc()},
            )
        finally:
            self.inflight -= 1
        response_headers = [
            (b"content-type", media),
            (b"content-length", b"%d" % len(payload)),
            (b"x-request-id", ex.request_id.encode()),
        ]
        if ex.version:
            response_headers.append((b"x-model-version", ex.version.encode()))
        if extra:
            response_headers.extend(extra)
        return Answer(ex, status, response_headers, payload, started)

    def record(self, answer: Answer) -> None:
        """Count a written answer in /metrics, the JSON log and the response hooks."""
        self._record(answer.exchange, answer.status, time.perf_counter() - answer.started)

    def _record(self, ex: Exchange, status: int, elapsed: float) -> None:
        self.metrics.request(ex.model, ex.version, status, elapsed, ex.code)
        if status >= 400 or ex.endpoint not in QUIET:
            level = "info" if status < 400 else ("warning" if status < 500 else "error")
            fields: dict[str, Any] = {
                "request_id": ex.request_id,
                "method": ex.method,
                "path": ex.path,
                "status": status,
                "model": ex.model,
                "version": ex.version,
                "rows": ex.rows,
                "duration_ms": round(elapsed * 1000, 3),
            }
            if ex.code is not None:
                fields["code"] = ex.code
                fields["error"] = ex.error
            self.log.emit(level, "request", fields, ts=ex.ts)
        if ex.prepared is not None and (self.on_response or (status >= 400 and self.on_failure)):
            self._notify(ex, status, elapsed)

    def _notify(self, ex: Exchange, status: int, elapsed: float) -> None:
        assert ex.prepared is not None
        event = InferenceEvent(
            request_id=ex.request_id,
            model=ex.model,
            version=ex.version,
            status=status,
            code=ex.code,
            ts=ex.ts,
            duration_s=elapsed,
            rows=ex.rows,
            model_input=ex.prepared.model_input,
            outputs=ex.outputs,
            start=ex.start,
            stop=ex.stop,
            deployment=ex.deployment or ex.model,
            arm=ex.arm,
        )
        hooks = self.on_response + self.on_failure if status >= 400 else self.on_response
        for hook in hooks:
            try:
                hook(event)
            except Exception as error:  # a hook must never fail a request
                self.log.emit(
                    "error",
                    "response_hook_failed",
                    {
                        "request_id": ex.request_id,
                        "hook": repr(hook),
                        "error": f"{type(error).__name__}: {error}",
                    },
                )

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
        self._apply_log_policies()
        now = time.time()
        if self._exchange.directory is not None and now - self._published >= _PUBLISH_S:
            self._published = now
            self._exchange.publish(self.metrics.snapshot(self._gauges(), now))

    def _apply_log_policies(self) -> None:
        logger = self.inference_log
        if logger is None:
            return
        default = default_log_policy(self.settings)
        for name, entry in self.table.deployments.items():
            if self._log_policies.get(name) != entry.revision:
                logger.set_policy(name, deployment_log_policy(entry.deployment.config, default))
                self._log_policies[name] = entry.revision

    async def _heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + _HEARTBEAT_S
            await asyncio.sleep(_HEARTBEAT_S)
            self.lag_s = lag_average(self.lag_s, loop.time() - expected)
