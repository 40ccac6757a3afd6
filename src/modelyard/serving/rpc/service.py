"""The Open Inference Protocol's gRPC service: its six RPCs over one worker's app.

``inference.GRPCInferenceService`` as KServe defines it, the service name Triton serves
too, so ``tritonclient.grpc`` and KServe's clients talk to it unchanged. ``ModelInfer``
hands its message to the worker's ``InferencePipeline`` with the ``GRPC`` wire format
(``wire.oip_grpc``): the same routing to deployments, validation, batching and inference
log as the REST route, and its refusals carry the same messages. A ``ModelyardError``
becomes the call's status through the one table of ``wire.status``
(``INVALID_ARGUMENT`` for bad input, ``NOT_FOUND``, ``UNAUTHENTICATED``, ``UNAVAILABLE``
when overloaded, ``DEADLINE_EXCEEDED``); the request id is in the error's trailing
metadata (``x-request-id``), as it is in the answer's ``id`` on success.

As over REST: the token (``serving.token``) is asked of inference and model metadata,
as the metadata ``authorization: Bearer <token>``, and health and server metadata stay
open; a request id comes from the metadata ``x-request-id`` when it is sane; a deadline
is the server's ``request_timeout_s`` or the caller's gRPC deadline, whichever is
sooner; every call is counted in ``/metrics`` and the JSON log under the REST
endpoint's name, with method ``GRPC`` and the HTTP status of the same outcome, so one
dashboard covers both. No Host allow-list: that guards against a web page's
DNS rebinding, and browsers cannot speak gRPC to a server.

Handlers answer serialised bytes (the server registers them without a response
serialiser), so that ``ModelInfer`` sends what the pipeline encoded as it is.
"""

from __future__ import annotations

import hmac
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from grpc import aio

from modelyard.errors import (
    MalformedRequestError,
    ModelNotReadyError,
    ModelyardError,
    UnauthorizedError,
)
from modelyard.serving.hosting.manager import ModelTable
from modelyard.serving.hosting.validation import InputValidator
from modelyard.serving.pipeline import Call, InferencePipeline, Reply, WireFormat, tensor_reader
from modelyard.serving.telemetry.jsonlog import JsonLog
from modelyard.serving.wire import classification, oip_grpc
from modelyard.serving.wire.oip import PLATFORMS
from modelyard.serving.wire.proto.messages import (
    ModelInferRequest,
    ModelMetadataRequest,
    ModelReadyRequest,
    ModelReadyResponse,
    ServerLiveRequest,
    ServerLiveResponse,
    ServerMetadataRequest,
    ServerMetadataResponse,
    ServerReadyRequest,
    ServerReadyResponse,
)
from modelyard.serving.wire.requestids import RequestIds
from modelyard.serving.wire.status import grpc_status, status_of

SERVICE = "inference.GRPCInferenceService"
Headers = list[tuple[bytes, bytes]]
Context = aio.ServicerContext[Any, bytes]


def _message_itself(message: ModelInferRequest) -> ModelInferRequest:
    return message  # grpcio has decoded it already


def _no_binary(body: object, header: bytes, max_values: int) -> Any:
    # Never called: only HTTP requests carry Inference-Header-Content-Length.
    raise MalformedRequestError("gRPC requests send raw tensors in raw_input_contents")


# The Open Inference Protocol over gRPC, for the pipeline (see ``wire.oip_grpc``).
GRPC = WireFormat(
    _message_itself,
    oip_grpc.parse_request,
    _no_binary,
    tensor_reader,
    InputValidator.from_oip,
    oip_grpc.encode_response,
    True,
    b"application/grpc",
)


class ServerView(Protocol):
    """What the service reads from the worker's app (``http.app.ServingApp``)."""

    table: ModelTable
    pipeline: InferencePipeline
    log: JsonLog
    inflight: int

    @property
    def ready(self) -> bool: ...

    def record(self, answer: tuple[Call, str, Reply, Headers, float]) -> None:
        """Count an answered call in /metrics and the JSON log."""
        ...


@dataclass(frozen=True, slots=True)
class Target:
    """The model (and version) a message names, as an HTTP path would."""

    model: str | None
    version: str | None


class InferenceService:
    """The handlers of ``inference.GRPCInferenceService`` over a ``ServerView``."""

    def __init__(
        self,
        view: ServerView,
        *,
        token: str | None,
        timeout_s: float,
        server_version: str,
    ) -> None:
        self._view = view
        self._token = f"Bearer {token}".encode() if token else None
        self._timeout_s = timeout_s
        self._version = server_version
        self._ids = RequestIds()

    def handlers(self) -> dict[str, tuple[Callable[..., Awaitable[bytes]], Any]]:
        """Each RPC's handler and the message type it takes."""
        return {
            "ServerLive": (self.server_live, ServerLiveRequest),
            "ServerReady": (self.server_ready, ServerReadyRequest),
            "ModelReady": (self.model_ready, ModelReadyRequest),
            "ServerMetadata": (self.server_metadata, ServerMetadataRequest),
            "ModelMetadata": (self.model_metadata, ModelMetadataRequest),
            "ModelInfer": (self.model_infer, ModelInferRequest),
        }

    # -- the RPCs -------------------------------------------------------------------------

    async def model_infer(self, request: ModelInferRequest, context: Context) -> bytes:
        async def infer(call: Call) -> Reply:
            if not request.model_name:
                raise MalformedRequestError("'model_name' must name the model to run")
            target = Target(request.model_name, request.model_version or None)
            return await self._view.pipeline.run(GRPC, target, call, request)

        return await self._answer("infer", "ModelInfer", context, infer, guarded=True)

    async def model_metadata(self, request: ModelMetadataRequest, context: Context) -> bytes:
        async def metadata(call: Call) -> Reply:
            if not request.name:
                raise MalformedRequestError("'name' must name a model")
            table = self._view.table
            runtime = table.lookup(request.name, request.version or None)
            message = oip_grpc.metadata_response(
                runtime.name,
                table.versions_of(runtime.name),
                PLATFORMS.get(runtime.flavour, runtime.flavour),
                runtime.tensors,
            )
            return Reply(
                200, message.SerializeToString(), model=runtime.name, version=runtime.version_text
            )

        return await self._answer("model_metadata", "ModelMetadata", context, metadata, True)

    async def model_ready(self, request: ModelReadyRequest, context: Context) -> bytes:
        async def ready(call: Call) -> Reply:
            if not request.name:
                raise MalformedRequestError("'name' must name a model")
            try:
                runtime = self._view.table.lookup(request.name, request.version or None)
            except ModelNotReadyError:
                return Reply(503, ModelReadyResponse(ready=False).SerializeToString())
            answer = self._view.ready
            return Reply(
                200 if answer else 503,
                ModelReadyResponse(ready=answer).SerializeToString(),
                model=runtime.name,
                version=runtime.version_text,
            )

        return await self._answer("model_ready", "ModelReady", context, ready, guarded=False)

    async def server_metadata(self, request: ServerMetadataRequest, context: Context) -> bytes:
        async def metadata(call: Call) -> Reply:
            # The binary tensor data extension is REST's: gRPC sends raw tensors natively.
            message = ServerMetadataResponse(
                name="modelyard", version=self._version, extensions=[classification.EXTENSION]
            )
            return Reply(200, message.SerializeToString())

        return await self._answer("server_metadata", "ServerMetadata", context, metadata, False)

    async def server_live(self, request: ServerLiveRequest, context: Context) -> bytes:
        async def live(call: Call) -> Reply:
            return Reply(200, ServerLiveResponse(live=True).SerializeToString())

        return await self._answer("live", "ServerLive", context, live, guarded=False)

    async def server_ready(self, request: ServerReadyRequest, context: Context) -> bytes:
        async def ready(call: Call) -> Reply:
            answer = self._view.ready
            return Reply(
                200 if answer else 503, ServerReadyResponse(ready=answer).SerializeToString()
            )

        return await self._answer("ready", "ServerReady", context, ready, guarded=False)

    # -- what every RPC does --------------------------------------------------------------

    async def _answer(
        self,
        endpoint: str,
        rpc: str,
        context: Context,
        answer: Callable[[Call], Awaitable[Reply]],
        guarded: bool,
    ) -> bytes:
        """Run ``answer`` for one call: its ``Call``, the token, the error status, the
        request log; the serialised answer, or the call aborted with its status."""
        started = time.perf_counter()
        headers, incoming_id, authorization = _read_metadata(context.invocation_metadata())
        now = time.monotonic()
        remaining = context.time_remaining()
        timeout = self._timeout_s if remaining is None else min(self._timeout_s, remaining)
        call = Call(
            self._ids.take(incoming_id),
            "GRPC",
            f"/{SERVICE}/{rpc}",
            headers,
            now,
            time.time(),
            now + timeout,
        )
        view = self._view
        view.inflight += 1
        try:
            if guarded and self._token is not None:
                _check_bearer(authorization, self._token)
            reply = await answer(call)
        except ModelyardError as error:
            reply = Reply(
                status_of(error).http, b"", code=error.code, error=error.detail, refusal=error
            )
        except Exception as error:  # a bug: INTERNAL with the request id, the trace logged
            reply = Reply(500, b"", code="internal_error", error=f"{type(error).__name__}: {error}")
            view.log.emit(
                "error",
                "internal_error",
                {"request_id": call.request_id, "traceback": traceback.format_exc()},
            )
        finally:
            view.inflight -= 1
        view.record((call, endpoint, reply, [], started))
        if reply.code is None:
            return reply.payload
        refusal = reply.refusal
        if refusal is None:
            status = grpc.StatusCode.INTERNAL
            message = f"internal error; quote request id {call.request_id}"
        else:
            status = grpc.StatusCode[grpc_status(refusal)]
            message = refusal.message
        await context.abort(status, message, (("x-request-id", call.request_id),))
        raise AssertionError("unreachable: abort raises")  # for the type checker


def _check_bearer(authorization: bytes | None, expected: bytes) -> None:
    """``UnauthorizedError`` unless the metadata's token is ``expected`` (constant time)."""
    if authorization is None or not hmac.compare_digest(authorization, expected):
        raise UnauthorizedError("this call needs the metadata 'authorization: Bearer <token>'")


def _read_metadata(
    metadata: Iterable[tuple[str, str | bytes]] | None,
) -> tuple[Headers, bytes | None, bytes | None]:
    """A call's metadata as HTTP headers are read (lower-case names, bytes), with its
    request id and authorization."""
    headers: Headers = []
    incoming_id = authorization = None
    for key, value in metadata or ():
        raw = value if isinstance(value, bytes) else value.encode()
        name = key.encode()
        headers.append((name, raw))
        if name == b"x-request-id":
            incoming_id = raw
        elif name == b"authorization":
            authorization = raw
    return headers, incoming_id, authorization
