"""The endpoints: what each route answers, given the request's facts and body.

Each handler returns ``(status, body, content type, extra headers)`` or raises a
``ModelyardError``, which ``app.ServingApp`` turns into the protocol's error
object. The inference path is: find the runtime, parse the envelope, validate
into the model's input, queue it on the batcher, encode this request's rows.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import numpy as np
import orjson

from modelyard.errors import ModelNotReadyError, OverloadedError, RouteNotFoundError
from modelyard.monitoring.feedback import FeedbackResult
from modelyard.serving.hosting.manager import ModelTable
from modelyard.serving.hosting.runtime import ModelRuntime
from modelyard.serving.hosting.served_deployment import (
    PINNED_ARM,
    ServedDeployment,
    record_field,
    tensor_field,
)
from modelyard.serving.hosting.shadow import ShadowMirror
from modelyard.serving.hosting.validation import Prepared
from modelyard.serving.http.routes import Endpoint
from modelyard.serving.telemetry.metrics import CONTENT_TYPE as METRICS_TYPE
from modelyard.serving.wire.json_body import decode_json
from modelyard.serving.wire.oip import (
    PLATFORMS,
    InferRequest,
    check_outputs,
    infer_response,
    parse_infer_request,
)
from modelyard.serving.wire.records import parse_records_request, records_response

JSON = b"application/json"
Headers = list[tuple[bytes, bytes]]
Reply = tuple[int, bytes, bytes, Headers]


class Exchange:
    """One request's facts, filled in while it is handled (for response, log, metrics)."""

    __slots__ = (
        "request_id",
        "method",
        "path",
        "started",
        "ts",
        "deadline",
        "model",
        "version",
        "rows",
        "code",
        "error",
        "prepared",
        "outputs",
        "start",
        "stop",
        "endpoint",
        "headers",
        "deployment",
        "arm",
    )

    def __init__(
        self, request_id: str, method: str, path: str, started: float, ts: float, deadline: float
    ) -> None:
        self.request_id = request_id
        self.method = method
        self.path = path
        self.started = started  # time.monotonic(), for deadlines
        self.ts = ts  # wall clock, for logs
        self.deadline = deadline
        self.model = ""
        self.version = ""
        self.rows = 0
        self.code: str | None = None
        self.error: str | None = None
        self.prepared: Prepared | None = None
        self.outputs: dict[str, np.ndarray] | None = None
        self.start = 0
        self.stop = 0
        self.endpoint = ""
        self.headers: list[tuple[bytes, bytes]] = []  # the ASGI scope's, for routing keys
        self.deployment = ""  # the deployment (or model) the request was sent to
        self.arm = "primary"  # the deployment's arm that answered (see ``hooks.RequestInfo``)


Handler = Callable[[Endpoint, Exchange, bytes], Awaitable[Reply]]


class ServerView(Protocol):
    """What the endpoints read from the app."""

    table: ModelTable
    shadows: ShadowMirror
    # Stores posted labels (a blocking write; run off the event loop). None: disabled.
    feedback: Callable[[object], FeedbackResult] | None

    @property
    def ready(self) -> bool: ...

    def metrics_text(self) -> bytes: ...

    def openapi_json(self) -> bytes: ...


def _json(status: int, document: Any) -> Reply:
    return status, orjson.dumps(document), JSON, []


class Endpoints:
    """Endpoint handlers over a ``ServerView``."""

    def __init__(self, view: ServerView, *, server_version: str) -> None:
        self._view = view
        self._server_version = server_version
        self.handlers: dict[str, Handler] = {
            "infer": self.infer,
            "predict": self.predict,
            "model_metadata": self.model_metadata,
            "model_ready": self.model_ready,
            "model_status": self.model_ready,
            "server_metadata": self.server_metadata,
            "live": self.live,
            "ready": self.ready,
            "repository_index": self.repository_index,
            "metrics": self.metrics,
            "openapi": self.openapi,
            "feedback": self.feedback,
        }

    # -- inference ----------------------------------------------------------------------

    async def infer(self, route: Endpoint, ex: Exchange, body: bytes) -> Reply:
        served = self._view.table.deployment(route.model, route.version)
        request: InferRequest | None = None
        shadows: tuple[int, ...] = ()
        if served is None:
            runtime = self._runtime(route, ex)
        else:
            request = parse_infer_request(decode_json(body), served.max_values)
            inputs, names = request.inputs, served.input_names
            runtime, shadows = self._choose(
                served, ex, lambda name: tensor_field(inputs, names, name)
            )
        runtime.active += 1
        try:
            batcher = runtime.batcher
            if batcher.saturated:
                raise OverloadedError(f"{runtime.label} has a full queue; retry shortly")
            validator = runtime.validator
            if request is None:
                request = parse_infer_request(
                    decode_json(body), validator.max_rows * validator.width
                )
            check_outputs(request.outputs, runtime.signature)
            if request.timeout_s is not None:
                ex.deadline = min(ex.deadline, ex.started + request.timeout_s)
            prepared = validator.from_tensors(request.inputs)
            ex.rows = prepared.rows
            ex.prepared = prepared
            outputs, start, stop = await batcher.submit(prepared, ex.deadline, ex)
        finally:
            runtime.active -= 1
        ex.outputs, ex.start, ex.stop = outputs, start, stop
        if shadows and served is not None:
            self._view.shadows.mirror(served, shadows, runtime.version, ex, outputs, start, stop)
        payload = infer_response(
            runtime.name,
            runtime.version_text,
            request.id or ex.request_id,
            outputs,
            start,
            stop,
            request.outputs,
        )
        return 200, payload, JSON, []

    async def predict(self, route: Endpoint, ex: Exchange, body: bytes) -> Reply:
        served = self._view.table.deployment(route.model, route.version)
        records: object = None
        shadows: tuple[int, ...] = ()
        if served is None:
            runtime = self._runtime(route, ex)
        else:
            records = parse_records_request(decode_json(body))
            runtime, shadows = self._choose(served, ex, lambda name: record_field(records, name))
        runtime.active += 1
        try:
            if runtime.batcher.saturated:
                raise OverloadedError(f"{runtime.label} has a full queue; retry shortly")
            if served is None:
                records = parse_records_request(decode_json(body))
            prepared = runtime.validator.from_records(records)
            ex.rows = prepared.rows
            ex.prepared = prepared
            outputs, start, stop = await runtime.batcher.submit(prepared, ex.deadline, ex)
        finally:
            runtime.active -= 1
        ex.outputs, ex.start, ex.stop = outputs, start, stop
        if shadows and served is not None:
            self._view.shadows.mirror(served, shadows, runtime.version, ex, outputs, start, stop)
        payload = records_response(
            runtime.name, runtime.version_text, ex.request_id, outputs, start, stop
        )
        return 200, payload, JSON, []

    def _runtime(self, route: Endpoint, ex: Exchange) -> ModelRuntime:
        assert route.model is not None
        table = self._view.table
        runtime = table.lookup(route.model, route.version)
        ex.model = runtime.name
        ex.version = runtime.version_text
        if route.model in table.deployments:
            ex.deployment = route.model
            ex.arm = PINNED_ARM if route.version is not None else "champion"
        else:
            ex.deployment = runtime.name
        return runtime

    def _choose(
        self, served: ServedDeployment, ex: Exchange, field: Callable[[str], Any]
    ) -> tuple[ModelRuntime, tuple[int, ...]]:
        """The deployment's arm for this request; the shadows to mirror it to."""
        runtime, chosen = served.choose(ex.headers, field if served.needs_fields else None)
        ex.model = runtime.name
        ex.version = runtime.version_text
        ex.deployment = served.name
        ex.arm = chosen.arm
        return runtime, chosen.shadows

    # -- metadata and health ------------------------------------------------------------

    async def model_metadata(self, route: Endpoint, ex: Exchange, body: bytes) -> Reply:
        runtime = self._runtime(route, ex)
        document = {
            "name": runtime.name,
            "versions": self._view.table.versions_of(runtime.name),
            "platform": PLATFORMS.get(runtime.flavour, runtime.flavour),
            **runtime.tensors,
        }
        return _json(200, document)

    async def model_ready(self, route: Endpoint, ex: Exchange, body: bytes) -> Reply:
        assert route.model is not None
        try:
            self._runtime(route, ex)
        except ModelNotReadyError:
            return _json(503, {"name": route.model, "ready": False})
        ready = self._view.ready
        return _json(200 if ready else 503, {"name": route.model, "ready": ready})

    async def server_metadata(self, route: Endpoint, ex: Exchange, body: bytes) -> Reply:
        return _json(200, {"name": "modelyard", "version": self._server_version, "extensions": []})

    async def live(self, route: Endpoint, ex: Exchange, body: bytes) -> Reply:
        return _json(200, {"live": True})

    async def ready(self, route: Endpoint, ex: Exchange, body: bytes) -> Reply:
        ready = self._view.ready
        return _json(200 if ready else 503, {"ready": ready})

    async def repository_index(self, route: Endpoint, ex: Exchange, body: bytes) -> Reply:
        index = []
        for served in self._view.table.served:
            runtime = served.runtime
            index.append(
                {
                    "name": served.ref.name,
                    "version": runtime.version_text if runtime else "",
                    "state": "READY" if runtime else "UNAVAILABLE",
                    "reason": f"serving {served.text}" if runtime else f"loading {served.text}",
                }
            )
        for name, entry in sorted(self._view.table.deployments.items()):
            arms = ", ".join(f"{arm} {v}" for arm, v in entry.deployment.arms.items())
            index.append(
                {
                    "name": name,
                    "version": entry.champion.version_text,
                    "state": "READY",
                    "reason": f"deployment of {entry.champion.name}: {arms}",
                }
            )
        return _json(200, index)

    async def feedback(self, route: Endpoint, ex: Exchange, body: bytes) -> Reply:
        receiver = self._view.feedback
        if receiver is None:
            raise RouteNotFoundError("this server does not accept feedback (no inference log)")
        document = decode_json(body)
        result = await asyncio.get_running_loop().run_in_executor(None, receiver, document)
        return _json(200, dataclasses.asdict(result))

    async def metrics(self, route: Endpoint, ex: Exchange, body: bytes) -> Reply:
        return 200, self._view.metrics_text(), METRICS_TYPE.encode(), []

    async def openapi(self, route: Endpoint, ex: Exchange, body: bytes) -> Reply:
        return 200, self._view.openapi_json(), JSON, []
