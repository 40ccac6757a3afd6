"""The wire formats: Open Inference Protocol (KServe V2) and JSON records (KServe V1).

Request envelopes are checked here (a broken envelope is a 400); the values
inside are checked by ``validation.InputValidator`` against the model's
signature. Responses are built as plain dicts holding numpy arrays, which orjson
serialises directly (``OPT_SERIALIZE_NUMPY``) without a ``tolist()`` copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from modelyard.errors import ValidationError
from modelyard.registry.signature import Signature
from modelyard.serving.errors import MalformedRequestError
from modelyard.serving.tensors import (
    Tensor,
    check_parameters,
    check_tensor,
    datatype_of,
    names_list,
    parse_tensor,
)

Outputs = dict[str, np.ndarray]
_DUMP_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_ABSENT = object()  # a key not given, as opposed to given as null
# Flavour -> the platform names Triton and KServe use for the same runtimes.
PLATFORMS = {
    "onnx": "onnxruntime_onnx",
    "skops": "sklearn_skops",
    "lightgbm": "lightgbm",
    "pickle": "sklearn_pickle",
}


@dataclass(slots=True)
class InferRequest:
    """An OIP ``$inference_request`` with checked structure."""

    id: str | None
    inputs: list[Tensor]
    outputs: tuple[str, ...] | None
    timeout_s: float | None = None


def decode_json(body: bytes) -> Any:
    """Parse a request body (orjson: strict JSON, no NaN/Infinity literals)."""
    if not body:
        raise MalformedRequestError("the request body is empty; send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise MalformedRequestError(f"the request body is not valid JSON: {error}") from None


def parse_infer_request(doc: object, max_values: int) -> InferRequest:
    """Check an OIP inference request's envelope and flatten its tensors.

    The whole structure is checked before any tensor's size or data, so a request
    that is malformed anywhere is a 400 rather than whichever error comes first.
    """
    if type(doc) is not dict:
        raise MalformedRequestError("the request body must be a JSON object with 'inputs'")
    raw_inputs = doc.get("inputs")
    if type(raw_inputs) is not list or not raw_inputs:
        raise MalformedRequestError("'inputs' must be a non-empty list of tensors")
    for position, raw in enumerate(raw_inputs):
        check_tensor(raw, position)
    request_id = doc.get("id", _ABSENT)
    if request_id is _ABSENT:
        request_id = None
    elif type(request_id) is not str:
        raise MalformedRequestError(f"'id' must be a string, got {_json_type(request_id)}")
    timeout_s = _timeout(doc.get("parameters", _ABSENT))
    outputs = _requested_outputs(doc.get("outputs", _ABSENT))
    inputs = [parse_tensor(raw, max_values) for raw in raw_inputs]
    return InferRequest(request_id, inputs, outputs, timeout_s)


def _json_type(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _timeout(parameters: object) -> float | None:
    if parameters is _ABSENT:
        return None
    timeout = check_parameters(parameters).get("timeout")
    if timeout is None:
        return None
    # Triton's convention: a per-request deadline in microseconds.
    if type(timeout) is not int or timeout <= 0:
        raise MalformedRequestError(
            f"parameters.timeout must be a positive integer (microseconds), got {timeout!r}"
        )
    return timeout / 1e6


def _requested_outputs(raw_outputs: object) -> tuple[str, ...] | None:
    if raw_outputs is _ABSENT:
        return None
    if type(raw_outputs) is not list:
        raise MalformedRequestError("'outputs' must be a list of {\"name\": ...} objects")
    names = []
    for i, item in enumerate(raw_outputs):
        if type(item) is not dict or type(item.get("name")) is not str:
            raise MalformedRequestError(f"outputs[{i}] must be an object with a string 'name'")
        if "parameters" in item:
            check_parameters(item["parameters"], f"outputs[{i}]: ")
        names.append(item["name"])
    return tuple(names)


def parse_records_request(doc: object) -> object:
    """The ``instances`` of a ``{"instances": [...]}`` body (checked by the validator)."""
    if type(doc) is not dict or "instances" not in doc:
        raise MalformedRequestError(
            'the request body must be a JSON object like {"instances": [{"field": value, ...}]}'
        )
    return doc["instances"]


def check_outputs(wanted: tuple[str, ...] | None, signature: Signature) -> None:
    """Refuse a request for outputs the model does not produce."""
    if not wanted:
        return
    known = [spec.name for spec in signature.outputs]
    unknown = [name for name in wanted if name not in known]
    if unknown and known:
        raise ValidationError(
            f"unknown output(s) {names_list(unknown)}; this model returns {names_list(known)}"
        )


def _tensor_data(values: np.ndarray) -> Any:
    kind = values.dtype.kind
    if kind in "fiub":
        return values.ravel()  # a view of a row slice; orjson writes it without tolist()
    if kind in "OUS":
        return [str(v) for v in values.ravel().tolist()]
    return values.ravel().tolist()


def infer_response(
    model_name: str,
    model_version: str,
    request_id: str,
    outputs: Outputs,
    start: int,
    stop: int,
    wanted: tuple[str, ...] | None,
) -> bytes:
    """The OIP ``$inference_response`` for rows ``start:stop`` of a batch's outputs."""
    tensors = []
    for name in wanted or outputs:
        values = outputs[name][start:stop]
        tensors.append(
            {
                "name": name,
                "datatype": datatype_of(values.dtype),
                "shape": [stop - start, *values.shape[1:]],
                "data": _tensor_data(values),
            }
        )
    return orjson.dumps(
        {
            "model_name": model_name,
            "model_version": model_version,
            "id": request_id,
            "outputs": tensors,
        },
        option=_DUMP_OPTIONS,
    )


def records_response(
    model_name: str, model_version: str, request_id: str, outputs: Outputs, start: int, stop: int
) -> bytes:
    """``{"predictions": [...]}``: one value per record (one object per record if the
    model has several outputs), as TensorFlow Serving and KServe V1 answer. A
    trailing dimension of 1 (``[n, 1]`` regressor outputs) is dropped, so a
    regressor answers plain numbers."""
    names = list(outputs)
    columns = []
    for name in names:
        values = outputs[name][start:stop]
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        columns.append(values)
    predictions: Any
    if len(names) == 1:
        only = columns[0]
        predictions = only.tolist() if only.dtype.kind in "OUS" else np.ascontiguousarray(only)
    else:
        lists = [values.tolist() for values in columns]
        predictions = [dict(zip(names, row, strict=True)) for row in zip(*lists, strict=True)]
    return orjson.dumps(
        {
            "model_name": model_name,
            "model_version": model_version,
            "id": request_id,
            "predictions": predictions,
        },
        option=_DUMP_OPTIONS,
    )


def tensor_metadata(signature: Signature, matrix_datatype: str | None) -> dict[str, Any]:
    """The ``inputs``/``outputs`` of a model metadata response.

    A matrix-layout model advertises its one ``input`` tensor ``[-1, fields]``,
    which is what the model takes and what KServe/Triton clients send for a
    tabular model; its field order is given in ``parameters.fields``. Per-field
    tensors are accepted too. Other models advertise one tensor per field.
    """
    if matrix_datatype is not None:
        inputs = [
            {
                "name": "input",
                "datatype": matrix_datatype,
                "shape": [-1, len(signature.inputs)],
                "parameters": {"fields": [spec.name for spec in signature.inputs]},
            }
        ]
    else:
        inputs = [
            {"name": spec.name, "datatype": datatype_of(spec.dtype), "shape": [-1]}
            for spec in signature.inputs
        ]
    outputs = [
        {"name": spec.name, "datatype": datatype_of(spec.dtype), "shape": [-1, *spec.shape]}
        for spec in signature.outputs
    ]
    return {"inputs": inputs, "outputs": outputs}


def example_requests(
    signature: Signature, matrix_datatype: str | None, record: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """An OIP request and a records request for one ``record`` (for the OpenAPI document)."""
    names = [spec.name for spec in signature.inputs]
    if matrix_datatype is not None:
        tensors = [
            {
                "name": "input",
                "shape": [1, len(names)],
                "datatype": matrix_datatype,
                "data": [record[name] for name in names],
            }
        ]
    else:
        tensors = [
            {
                "name": s.name,
                "shape": [1],
                "datatype": datatype_of(s.dtype),
                "data": [record[s.name]],
            }
            for s in signature.inputs
        ]
    return {"inputs": tensors}, {"instances": [record]}
