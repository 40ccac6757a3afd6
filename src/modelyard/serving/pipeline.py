"""The inference path as one pipeline: parse -> route -> validate -> submit -> encode.

``InferencePipeline.run`` answers one inference request from what the HTTP layer
knows of it (a ``Call``: its id, arrival, deadline and headers), the model and
version its path names, and its body, in five steps, each a call into the module
that owns it:

* parse: the wire format (``wire.oip``, ``wire.records``) checks the envelope;
* route: a deployment picks the arm (``ServedDeployment.choose``), or the path names a
  served reference or a pinned version (``ModelTable.lookup``); the request's
  ``RequestRecord`` is fixed here and travels with it unchanged;
* validate: the version's ``InputValidator`` builds the model input;
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
from typing import Any, NamedTuple, Protocol

import numpy as np

from modelyard.errors import ModelyardError, OverloadedError
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
from modelyard.serving.hosting.validation import Prepared
from modelyard.serving.wire import oip, records
from modelyard.serving.wire.json_body import decode_json
from modelyard.serving.wire.status import error_body, error_headers, http_status

Outputs = dict[str, np.ndarray]
Headers = Sequence[tuple[bytes, bytes]]
# (event, fields) -> None: where the pipeline reports what it cannot answer with.
Report = Callable[[str, dict[str, object]], None]
JSON = b"application/json"


class Call(NamedTuple):
    """What the HTTP layer knows of a request before it is answered."""

    request_id: str
    method: str
    path: str
    headers: Headers  # lower-case names, as received
    received: float  # time.monotonic() at arrival, for deadlines
    ts: float  # wall clock at arrival, for logs
    deadline: float  # time.monotonic() by which it must be answered


class Reply(NamedTuple):
    """An endpoint's answer, and what the request log and metrics say about it."""

    status: int
    payload: bytes
    media: bytes = JSON
    extra: Headers = ()
    model: str = ""
    version: str = ""
    rows: int = 0
    code: str | None = None
    error: str | None = None


class WireFormat(Protocol):
    """How one wire format reads an inference request and writes its answer."""

    def parse(self, body: bytes, max_values: int) -> Any: ...

    def field_reader(self, request: Any, names: Sequence[str]) -> Callable[[str], Any]: ...

    def prepare(self, runtime: ModelRuntime, request: Any) -> Prepared: ...

    def deadline(self, request: Any, call: Call) -> float: ...

    def encode(
        self,
        runtime: ModelRuntime,
        request: Any,
        request_id: str,
        outputs: Outputs,
        start: int,
        stop: int,
    ) -> bytes: ...


class OipFormat:
    """The Open Inference Protocol (``wire.oip``): tensors in, tensors out."""

    def parse(self, body: bytes, max_values: int) -> oip.InferRequest:
        return oip.parse_infer_request(decode_json(body), max_values)

    def field_reader(self, request: oip.InferRequest, names: Sequence[str]) -> Callable[[str], Any]:
        return lambda wanted: oip.tensor_field(request.inputs, names, wanted)

    def prepare(self, runtime: ModelRuntime, request: oip.InferRequest) -> Prepared:
        oip.check_outputs(request.outputs, runtime.signature)
        return runtime.validator.from_tensors(request.inputs)

    def deadline(self, request: oip.InferRequest, call: Call) -> float:
        timeout = request.timeout_s
        return call.deadline if timeout is None else min(call.deadline, call.received + timeout)

    def encode(
        self,
        runtime: ModelRuntime,
        request: oip.InferRequest,
        request_id: str,
        outputs: Outputs,
        start: int,
        stop: int,
    ) -> bytes:
        return oip.infer_response(
            runtime.name,
            runtime.version_text,
            request.id or request_id,
            outputs,
            start,
            stop,
            request.outputs,
        )


class RecordsFormat:
    """JSON records (``wire.records``): ``{"instances": [...]}`` in, predictions out."""

    def parse(self, body: bytes, max_values: int) -> object:
        return records.parse_records_request(decode_json(body))

    def field_reader(self, request: object, names: Sequence[str]) -> Callable[[str], Any]:
        return lambda wanted: records.record_field(request, wanted)

    def prepare(self, runtime: ModelRuntime, request: object) -> Prepared:
        return runtime.validator.from_records(request)

    def deadline(self, request: object, call: Call) -> float:
        return call.deadline

    def encode(
        self,
        runtime: ModelRuntime,
        request: object,
        request_id: str,
        outputs: Outputs,
        start: int,
        stop: int,
    ) -> bytes:
        return records.records_response(
            runtime.name, runtime.version_text, request_id, outputs, start, stop
        )


OIP = OipFormat()
RECORDS = RecordsFormat()


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

    async def run(
        self, fmt: WireFormat, model: str, version: str | None, call: Call, body: bytes
    ) -> Reply:
        """Answer ``body``, sent to ``model`` (and ``version``, if the path names one)."""
        served = self._table.deployment(model, version)
        request: Any = None
        shadows: tuple[int, ...] = ()
        if served is None:
            runtime, record = self._lookup(model, version, call)
        elif served.needs_fields:
            request = fmt.parse(body, served.max_values)
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
                request = fmt.parse(body, runtime.max_values)
            prepared = fmt.prepare(runtime, request)
            future = runtime.batcher.submit(prepared, fmt.deadline(request, call), record)
            outputs, start, stop = await future
        except ModelyardError as error:
            return self._refused(error, runtime, record, prepared, call)
        finally:
            runtime.active -= 1
        if shadows and served is not None:
            self._shadows.mirror(
                served, shadows, runtime.version, (record, call.received, prepared), outputs,
                start, stop,
            )  # fmt: skip
        payload = fmt.encode(runtime, request, record.request_id, outputs, start, stop)
        return Reply(200, payload, JSON, (), runtime.name, runtime.version_text, prepared.rows)

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
            error_body(error.message, error.code),
            JSON,
            error_headers(error, status),
            runtime.name,
            runtime.version_text,
            rows,
            error.code,
            error.message,
        )
