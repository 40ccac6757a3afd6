"""The inference path as one pipeline: parse -> route -> validate -> submit -> encode.

``InferencePipeline.run`` answers one inference request from what its transport
knows of it (a ``Call``: its id, arrival, deadline and headers), the model and
version it names (the HTTP path, or the gRPC message), and its body, in five steps,
each a call into the module that owns it:

* parse: the wire format (``wire.oip``, ``wire.records``, ``wire.oip_grpc``) checks the
  envelope;
* route: a deployment picks the arm (``ServedDeployment.choose``), or the path names a
  served reference or a pinned version (``ModelTable.lookup``); the request's
  ``RequestRecord`` is fixed here and travels with it unchanged;
* validate: the version's ``InputValidator`` builds the model input (for a deployment that
  fetches features, from the request's fields and the feature store: ``hosting.features``);
* submit: the version's ``Batcher`` runs it in a micro-batch, whose outcome goes to the
  ``InferenceRecorder`` before anyone is answered;
* encode: the wire format writes this request's rows.

A route that needs a field of the body (a routing key read from the first row) is
taken after parsing, any other before it, so that a full queue refuses a request
before its body is parsed. Every error after routing is answered here with the
protocol's error object, so the request log still names the version that refused it;
a request that had passed validation goes to the recorder as ``Failed`` too, so the
inference log holds every request the model was asked to answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import numpy as np

from modelyard.errors import MalformedRequestError, ModelyardError, OverloadedError
from modelyard.serving.hosting.manager import ModelTable
from modelyard.serving.hosting.outcomes import (
    PINNED_ARM,
    PRIMARY_ARM,
    Failed,
    InferenceRecorder,
    RequestRecord,
)
from modelyard.serving.hosting.runtime import ModelRuntime
from modelyard.serving.hosting.served_deployment import ServedDeployment
from modelyard.serving.hosting.shadow import ShadowMirror
from modelyard.serving.hosting.validation import InputValidator, Prepared
from modelyard.serving.wire import oip, records
from modelyard.serving.wire.binary import HEADER as BINARY_HEADER
from modelyard.serving.wire.binary import Framed
from modelyard.serving.wire.json_body import decode_json
from modelyard.serving.wire.status import error_body, error_headers, http_status

Outputs = dict[str, np.ndarray]
Headers = Sequence[tuple[bytes, bytes]]
# (event, fields) -> None: where the pipeline reports what it cannot answer with.
Report = Callable[[str, dict[str, object]], None]
JSON = b"application/json"
OCTETS = b"application/octet-stream"  # a binary tensor data answer, as Triton sends it


class Call:
    """What the transport knows of a request before it is answered (never changed after):
    over gRPC, ``method`` is ``GRPC``, ``path`` the RPC's and ``headers`` its metadata.

    Slotted classes with ``Final`` attributes, here and in ``Reply``, rather than
    ``NamedTuple``s: building and reading those costs a Python-level ``__new__`` and
    unspecialised attribute lookups, ~9,000 instructions a request in all
    (``benchmarks/serving/bench_instructions.py``).
    """

    __slots__ = (
        "binary_header", "deadline", "headers", "method", "path", "received", "request_id", "ts"
    )  # fmt: skip

    def __init__(
        self,
        request_id: str,
        method: str,
        path: str,
        headers: Headers,
        received: float,
        ts: float,
        deadline: float,
        binary_header: bytes | None = None,
    ) -> None:
        self.request_id: Final = request_id
        self.method: Final = method
        self.path: Final = path
        self.headers: Final = headers  # lower-case names, as received
        self.received: Final = received  # time.monotonic() at arrival, for deadlines
        self.ts: Final = ts  # wall clock at arrival, for logs
        self.deadline: Final = deadline  # time.monotonic() by which it must be answered
        # Inference-Header-Content-Length: the body is in the binary tensor data form
        self.binary_header: Final = binary_header


class Reply:
    """An endpoint's answer, and what the request log and metrics say about it.

    ``status`` is the HTTP status of the outcome, over either transport; a refused
    request carries its error in ``refusal`` too, for a transport with statuses of its
    own (gRPC: ``wire.status.grpc_status``). ``arm``: the deployment's arm that answered
    (an inference answer; ``:recommend`` names it in its body)."""

    __slots__ = (
        "arm", "code", "error", "extra", "media", "model", "payload", "refusal", "rows",
        "status", "version",
    )  # fmt: skip

    def __init__(
        self,
        status: int,
        payload: bytes,
        media: bytes = JSON,
        extra: Headers = (),
        model: str = "",
        version: str = "",
        rows: int = 0,
        code: str | None = None,
        error: str | None = None,
        refusal: ModelyardError | None = None,
        arm: str = "",
    ) -> None:
        self.status: Final = status
        self.payload: Final = payload
        self.media: Final = media
        self.extra: Final = extra
        self.model: Final = model
        self.version: Final = version
        self.rows: Final = rows
        self.code: Final = code
        self.error: Final = error
        self.refusal: Final = refusal
        self.arm: Final = arm


class Target(Protocol):
    """What the path of an inference request names (``http.routes.Endpoint``)."""

    @property
    def model(self) -> str | None: ...

    @property
    def version(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class WireFormat:
    """How one wire format reads an inference request and writes its answer: one function
    per pipeline step, so that a step costs one call."""

    # the body as the transport hands it over -> what ``parse`` reads (JSON over HTTP;
    # over gRPC the message, which grpcio has already decoded)
    decode: Callable[[Any], Any]
    # (decoded body, values one request may declare) -> the request
    parse: Callable[[Any, int], Any]
    # (body, its Inference-Header-Content-Length, values one request may declare) -> the
    # request, for a body in the binary tensor data form
    parse_binary: Callable[[bytes, bytes, int], Any]
    # (request, the model's input names) -> field name -> the first row's value
    field_reader: Callable[[Any, Sequence[str]], Callable[[str], Any]]
    # (the version's validator, request) -> the model's input
    prepare: Callable[[InputValidator, Any], Prepared]
    # (model, version, request, request id, batch outputs, start, stop, the version's
    # class labels) -> the body (``Framed``: JSON then binary tensor data)
    encode: Callable[[str, str, Any, str, Outputs, int, int, Sequence[str]], bytes | Framed]
    # whether requests carry their own deadline (``request.timeout_s``)
    timeouts: bool
    # the media type of an answer ``encode`` wrote as plain bytes
    media: bytes = JSON


def tensor_reader(request: oip.InferRequest, names: Sequence[str]) -> Callable[[str], Any]:
    """A field reader over an Open Inference Protocol request's tensors (routing keys)."""
    return lambda wanted: oip.tensor_field(request.inputs, names, wanted)


def _record_reader(request: records.RecordsRequest, names: Sequence[str]) -> Callable[[str], Any]:
    return lambda wanted: records.record_field(request, wanted)


def _records_input(validator: InputValidator, request: records.RecordsRequest) -> Prepared:
    return validator.from_records(request.instances)


def _no_binary(body: bytes, header: bytes, max_values: int) -> Any:
    raise MalformedRequestError(
        f"the binary tensor data extension ({BINARY_HEADER}) is for the Open Inference "
        "Protocol (/v2/models/{name}/infer); send this endpoint JSON"
    )


# The Open Inference Protocol (``wire.oip``): tensors in, tensors out.
OIP = WireFormat(
    decode_json,
    oip.parse_infer_request,
    oip.parse_binary_request,
    tensor_reader,
    InputValidator.from_oip,
    oip.encode_response,
    True,
)
# JSON records (``wire.records``): ``{"instances": [...]}`` in, predictions out.
RECORDS = WireFormat(
    decode_json,
    records.parse_records_request,
    _no_binary,
    _record_reader,
    _records_input,
    records.encode_response,
    False,
)


class InferencePipeline:
    """Answers inference requests from one worker's ``ModelTable`` (see the module
    docstring); event-loop thread only."""

    def __init__(
        self,
        table: ModelTable,
        shadows: ShadowMirror,
        recorder: InferenceRecorder | None,
        report: Report,
    ) -> None:
        self._table = table
        self._shadows = shadows
        self._recorder = recorder
        self._report = report

    async def run(self, fmt: WireFormat, target: Target, call: Call, body: Any) -> Reply:
        """Answer ``body`` (bytes over HTTP, what ``fmt.decode`` takes), sent to
        ``target.model`` (and ``target.version``, if the path names one).
        ``partial(run, fmt)`` is an endpoint's handler."""
        model, version = target.model, target.version
        assert model is not None
        served = self._table.deployment(model, version)
        request: Any = None
        shadows: tuple[int, ...] = ()
        if served is None:
            runtime, record = self._lookup(model, version, call)
        elif served.needs_fields:
            request = (
                fmt.parse(fmt.decode(body), served.max_values)
                if call.binary_header is None
                else fmt.parse_binary(body, call.binary_header, served.max_values)
            )
            runtime, record, shadows = self._choose(
                served, call, fmt.field_reader(request, served.input_names)
            )
        else:
            runtime, record, shadows = self._choose(served, call, None)
        runtime.active += 1
        prepared: Prepared | None = None
        try:
            if runtime.batcher.saturated:
                raise OverloadedError(f"{runtime.label} has a full queue; retry shortly")
            if request is None:
                request = (
                    fmt.parse(fmt.decode(body), runtime.max_values)
                    if call.binary_header is None
                    else fmt.parse_binary(body, call.binary_header, runtime.max_values)
                )
            join = None if served is None else served.features
            if join is None:
                prepared = fmt.prepare(runtime.validator, request)
            else:  # the rest of the model's inputs come from the feature store
                prepared = await join.complete(fmt.prepare(join.request_validator, request))
            deadline = call.deadline
            if fmt.timeouts and request.timeout_s is not None:
                deadline = min(deadline, call.received + request.timeout_s)
            outputs, start, stop = await runtime.batcher.submit(prepared, deadline, record)
        except ModelyardError as error:
            return self._refused(error, runtime, record, prepared, call)
        finally:
            runtime.active -= 1
        if shadows and served is not None:
            self._shadows.mirror(
                served, shadows, runtime.version, (record, call.received, prepared), outputs,
                start, stop,
            )  # fmt: skip
        name, version_text = runtime.name, runtime.version_text
        payload = fmt.encode(
            name, version_text, request, record.request_id, outputs, start, stop, runtime.labels
        )
        if type(payload) is bytes:
            return Reply(
                200, payload, fmt.media, (), name, version_text, prepared.rows, arm=record.arm
            )
        assert isinstance(payload, Framed)
        extra = ((b"inference-header-content-length", b"%d" % payload.header_length),)
        return Reply(200, payload.payload, OCTETS, extra, name, version_text, prepared.rows)

    def _lookup(
        self, model: str, version: str | None, call: Call
    ) -> tuple[ModelRuntime, RequestRecord]:
        """A served reference, a pinned version, or a deployment's champion by name."""
        runtime = self._table.lookup(model, version)
        if model in self._table.deployments:
            deployment, arm = model, (PINNED_ARM if version is not None else "champion")
        else:
            deployment, arm = runtime.name, PRIMARY_ARM
        return runtime, RequestRecord(call.request_id, call.ts, deployment, arm)

    def _choose(
        self, served: ServedDeployment, call: Call, field: Callable[[str], Any] | None
    ) -> tuple[ModelRuntime, RequestRecord, tuple[int, ...]]:
        """The deployment's arm for this request, and the shadows to mirror it to."""
        runtime, chosen = served.choose(call.headers, field)
        record = RequestRecord(call.request_id, call.ts, served.name, chosen.arm)
        return runtime, record, chosen.shadows

    def _refused(
        self,
        error: ModelyardError,
        runtime: ModelRuntime,
        record: RequestRecord,
        prepared: Prepared | None,
        call: Call,
    ) -> Reply:
        """The error answer; a validated request's failure goes to the recorder too."""
        status = http_status(error)
        rows = 0 if prepared is None else prepared.rows
        if prepared is not None and self._recorder is not None:
            failed = Failed(
                record,
                runtime.name,
                runtime.version,
                status,
                error.code,
                time.monotonic() - call.received,
                rows,
            )
            try:
                self._recorder.record(failed)
            except Exception as failure:  # recording a failure must not change its answer
                self._report(
                    "inference_record_failed",
                    {
                        "request_id": record.request_id,
                        "error": f"{type(failure).__name__}: {failure}",
                    },
                )
        return Reply(
            status,
            error_body(error.message, error.code, call.request_id),
            JSON,
            error_headers(error, status),
            runtime.name,
            runtime.version_text,
            rows,
            error.code,
            error.detail,
            error,
        )
