"""The Open Inference Protocol (KServe V2): tensors, request envelopes, responses, metadata.

The protocol sends a tensor as ``{"name", "datatype", "shape", "data"}`` with
``data`` either flat or nested in row-major order. This module checks that
structure and the envelope around it (a broken one is a 400,
``MalformedRequestError``; one declaring more values than a request may hold is a
413) and hands the validators a flat Python list; whether the values suit the
model is decided later, against its signature (``hosting.validation``, a 422).
Responses are built as plain dicts holding numpy arrays, which orjson serialises
directly (``OPT_SERIALIZE_NUMPY``) without a ``tolist()`` copy.

The binary tensor data extension (``wire.binary``) is read and written here too: an
input may carry its values as bytes after the JSON header (kept as a numpy array),
and outputs go back as bytes when the request asks (``Framed``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from modelyard.errors import MalformedRequestError, PayloadTooLargeError, ValidationError
from modelyard.registry.signature import Signature
from modelyard.serving.wire import binary, classification
from modelyard.serving.wire.binary import Framed
from modelyard.serving.wire.json_body import decode_json
from modelyard.serving.wire.messages import names_list, shape_of

NUMERIC_DATATYPES = frozenset(
    {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64"}
    | {"UINT8", "UINT16", "UINT32", "UINT64"}
)
INTEGER_DATATYPES = frozenset(d for d in NUMERIC_DATATYPES if "INT" in d)
DATATYPES = NUMERIC_DATATYPES | {"BOOL", "BYTES"}

# Which request datatypes a signature field of each kind accepts.
ACCEPTED_DATATYPES: dict[str, frozenset[str]] = {
    "number": NUMERIC_DATATYPES,
    "integer": INTEGER_DATATYPES,
    "boolean": frozenset({"BOOL"}),
    "string": frozenset({"BYTES"}),
}

_BY_NUMPY = {
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "bool": "BOOL",
}


_BY_DTYPE: dict[np.dtype[Any], str] = {np.dtype(name): dt for name, dt in _BY_NUMPY.items()}


def datatype_of(dtype: np.dtype[Any] | str) -> str:
    """The protocol datatype of a numpy dtype (``BYTES`` for strings and objects)."""
    found = _BY_DTYPE.get(dtype) if isinstance(dtype, np.dtype) else None
    return found if found is not None else _BY_NUMPY.get(np.dtype(dtype).name, "BYTES")


@dataclass(slots=True)
class Tensor:
    """A request tensor whose structure has been checked; ``data`` is flat, row-major: a
    list (JSON), or a numpy array for binary tensor data of a fixed-size datatype
    (``binary.flat_values`` turns either into a list)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: list[Any] | np.ndarray


def check_tensor(raw: object, position: int, binary_body: bool = False) -> int | None:
    """Check the structure of one ``$request_input`` object (everything but its size);
    its ``binary_data_size`` if its values follow the JSON header of a ``binary_body``."""
    if type(raw) is not dict:
        raise MalformedRequestError(f"inputs[{position}] must be an object, got {shape_of(raw)}")
    name = raw.get("name")
    if type(name) is not str or not name:
        raise MalformedRequestError(f"inputs[{position}] needs a non-empty string 'name'")
    datatype = raw.get("datatype")
    if type(datatype) is not str or datatype not in DATATYPES:
        raise MalformedRequestError(
            f"input {name!r}: 'datatype' must be one of {', '.join(sorted(DATATYPES))}, "
            f"got {datatype!r}"
        )
    shape = raw.get("shape")
    if type(shape) is not list or not shape or not all(type(d) is int and d >= 0 for d in shape):
        raise MalformedRequestError(
            f"input {name!r}: 'shape' must be a non-empty list of non-negative integers, "
            f"got {shape!r}"
        )
    params = raw.get("parameters", _ABSENT)
    if params is not _ABSENT:
        check_parameters(params, f"input {name!r}: ")
    size = (
        binary.binary_size(name, params)
        if params is not _ABSENT and "binary_data_size" in params
        else None
    )
    if size is not None:
        if not binary_body:
            raise MalformedRequestError(
                f"input {name!r} has parameters.binary_data_size but the request has no "
                f"{binary.HEADER!r} header saying where its binary data starts"
            )
        if "data" in raw:
            raise MalformedRequestError(
                f"input {name!r} has both 'data' and parameters.binary_data_size; send one"
            )
        return size
    if "data" not in raw:
        raise MalformedRequestError(f"input {name!r} has no 'data'")
    if type(raw["data"]) is not list:
        raise MalformedRequestError(
            f"input {name!r}: 'data' must be a list, got {shape_of(raw['data'])}"
        )
    return None


_PARAMETER_TYPES = frozenset({str, int, float, bool})


def check_parameters(params: object, where: str = "") -> dict[str, Any]:
    """A ``$parameters`` object: string keys, each value a string, number or boolean."""
    if type(params) is not dict:
        raise MalformedRequestError(f"{where}'parameters' must be an object")
    for key, value in params.items():
        if type(value) not in _PARAMETER_TYPES:
            raise MalformedRequestError(
                f"{where}parameter {key!r} must be a string, number or boolean, "
                f"got {shape_of(value)}"
            )
    return params


def parse_tensor(raw: dict[str, Any], max_values: int, chunk: memoryview | None = None) -> Tensor:
    """Flatten the data of a tensor that passed ``check_tensor`` (its binary data, if
    ``chunk`` is given).

    ``max_values`` bounds the element count the shape may declare, so a huge
    declared shape is refused before any work is done on it.
    """
    name: str = raw["name"]
    shape: list[int] = raw["shape"]
    check_size(name, shape, max_values)
    datatype: str = raw["datatype"]
    if chunk is not None:
        return Tensor(
            name, datatype, tuple(shape), binary.decode_tensor(name, datatype, shape, chunk)
        )
    return Tensor(name, datatype, tuple(shape), flatten(raw["data"], shape, name))


def check_size(name: str, shape: list[int], max_values: int) -> int:
    """The number of values ``shape`` declares; a 413 (``PayloadTooLargeError``) past
    ``max_values``, so a huge declared shape is refused before any work is done on it."""
    size = math.prod(shape)
    if size > max_values:
        raise PayloadTooLargeError(
            f"input {name!r}: shape {shape} declares {size} values, more than the "
            f"{max_values} this server accepts in one request (rows x fields, at most "
            "max_rows rows)"
        )
    return size


def flatten(data: object, shape: list[int], name: str) -> list[Any]:
    """Row-major values of ``data``, given flat or fully nested to match ``shape``."""
    if type(data) is not list:
        raise MalformedRequestError(f"input {name!r}: 'data' must be a list, got {shape_of(data)}")
    expected = math.prod(shape)
    if data and type(data[0]) is list and len(shape) > 1:
        data = _flatten_nested(data, shape, 0, name)
    if len(data) != expected:
        raise MalformedRequestError(
            f"input {name!r}: shape {shape} holds {expected} values but 'data' has {len(data)}"
        )
    return data


def _flatten_nested(data: list[Any], shape: list[int], depth: int, name: str) -> list[Any]:
    if len(data) != shape[depth]:
        raise MalformedRequestError(
            f"input {name!r}: nested 'data' does not match shape {shape} "
            f"(dimension {depth} has {len(data)} entries, expected {shape[depth]})"
        )
    if depth == len(shape) - 1:
        return data
    flat: list[Any] = []
    for item in data:
        if type(item) is not list:
            raise MalformedRequestError(
                f"input {name!r}: nested 'data' does not match shape {shape} "
                f"(expected a list at depth {depth + 1}, got {shape_of(item)})"
            )
        flat.extend(_flatten_nested(item, shape, depth + 1, name))
    return flat


Outputs = dict[str, np.ndarray]
DUMP_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
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
    # The binary tensor data extension: whether outputs are sent as bytes after the JSON
    # (``parameters.binary_data_output``), and per-output overrides (``binary_data``).
    binary_default: bool = False
    binary_outputs: dict[str, bool] | None = None
    # The classification extension: output name -> how many top classes to return.
    classification: dict[str, int] | None = None


def parse_binary_request(body: bytes, header: bytes, max_values: int) -> InferRequest:
    """``parse_infer_request`` for a body in the binary tensor data form, given the value
    of its ``Inference-Header-Content-Length`` header."""
    head, rest = binary.split_body(body, header)
    return parse_infer_request(decode_json(head), max_values, rest)


def parse_infer_request(
    doc: object, max_values: int, binary_data: memoryview | None = None
) -> InferRequest:
    """Check an OIP inference request's envelope and flatten its tensors.

    ``binary_data``: the bytes after the JSON header of a request in the binary tensor
    data form, which the inputs with ``parameters.binary_data_size`` take in turn.
    The whole structure is checked before any tensor's size or data, so a request
    that is malformed anywhere is a 400 rather than whichever error comes first.
    """
    if type(doc) is not dict:
        raise MalformedRequestError("the request body must be a JSON object with 'inputs'")
    raw_inputs = doc.get("inputs")
    if type(raw_inputs) is not list or not raw_inputs:
        raise MalformedRequestError("'inputs' must be a non-empty list of tensors")
    sizes: list[int | None] | None = None
    if binary_data is None:
        for position, raw in enumerate(raw_inputs):
            check_tensor(raw, position)
    else:
        sizes = [check_tensor(raw, position, True) for position, raw in enumerate(raw_inputs)]
        named = [
            (raw["name"], n) for raw, n in zip(raw_inputs, sizes, strict=True) if n is not None
        ]
        binary.check_sizes(named, len(binary_data))
    request_id = doc.get("id", _ABSENT)
    if request_id is _ABSENT:
        request_id = None
    elif type(request_id) is not str:
        raise MalformedRequestError(f"'id' must be a string, got {_json_type(request_id)}")
    parameters = doc.get("parameters", _ABSENT)
    timeout_s = _timeout(parameters)
    raw_outputs = doc.get("outputs", _ABSENT)
    outputs = _requested_outputs(raw_outputs)
    if sizes is None:
        inputs = [parse_tensor(raw, max_values) for raw in raw_inputs]
    else:
        assert binary_data is not None
        inputs = _binary_inputs(raw_inputs, sizes, max_values, binary_data)
    request = InferRequest(request_id, inputs, outputs, timeout_s)
    if parameters is not _ABSENT or raw_outputs is not _ABSENT:
        _output_options(request, parameters, raw_outputs)
    return request


def _binary_inputs(
    raw_inputs: list[Any], sizes: list[int | None], max_values: int, binary_data: memoryview
) -> list[Tensor]:
    """The tensors of a binary request: each input with a size takes the next bytes."""
    inputs = []
    offset = 0
    for raw, size in zip(raw_inputs, sizes, strict=True):
        if size is None:
            inputs.append(parse_tensor(raw, max_values))
        else:
            inputs.append(parse_tensor(raw, max_values, binary_data[offset : offset + size]))
            offset += size
    return inputs


def _output_options(request: InferRequest, parameters: Any, raw_outputs: Any) -> None:
    """Which outputs go back as binary data (``parameters.binary_data_output`` for all,
    overridden by an output's own ``parameters.binary_data``) and which as classifications
    (an output's ``parameters.classification``); structure already checked."""
    default = False
    if parameters is not _ABSENT:
        value = parameters.get("binary_data_output", False)
        if type(value) is not bool:
            raise MalformedRequestError(
                f"parameters.binary_data_output must be true or false, got {value!r}"
            )
        default = value
    overrides: dict[str, bool] = {}
    counts: dict[str, int] = {}
    if raw_outputs is not _ABSENT:
        for item in raw_outputs:
            options = item.get("parameters", {})
            count = classification.requested_count(item["name"], options)
            if count is not None:
                counts[item["name"]] = count
            value = options.get("binary_data")
            if value is None:
                continue
            if type(value) is not bool:
                raise MalformedRequestError(
                    f"output {item['name']!r}: parameters.binary_data must be true or false, "
                    f"got {value!r}"
                )
            overrides[item["name"]] = value
    request.binary_default = default
    request.binary_outputs = overrides or None
    request.classification = counts or None


def _json_type(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _timeout(parameters: object) -> float | None:
    if parameters is _ABSENT:
        return None
    return check_timeout(check_parameters(parameters).get("timeout"))


def check_timeout(timeout: object) -> float | None:
    """A request's ``parameters.timeout`` (None: not given) in seconds."""
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


def encode_response(
    model_name: str,
    model_version: str,
    request: InferRequest,
    request_id: str,
    outputs: Outputs,
    start: int,
    stop: int,
    labels: Sequence[str] = (),
) -> bytes | Framed:
    """The OIP ``$inference_response`` to ``request`` for rows ``start:stop`` of a batch's
    outputs: its own ``id`` (else ``request_id``), the outputs it names (else all);
    ``labels``: the version's class names, for the classification extension.

    ``Framed`` (the binary tensor data form) when the request asked for binary outputs."""
    if request.binary_default or request.binary_outputs or request.classification:
        return _encode_binary(
            model_name, model_version, request, request_id, outputs, start, stop, labels
        )
    tensors = []
    for name in request.outputs or outputs:
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
            "id": request.id or request_id,
            "outputs": tensors,
        },
        option=DUMP_OPTIONS,
    )


def _encode_binary(
    model_name: str,
    model_version: str,
    request: InferRequest,
    request_id: str,
    outputs: Outputs,
    start: int,
    stop: int,
    labels: Sequence[str],
) -> bytes | Framed:
    default, overrides = request.binary_default, request.binary_outputs or {}
    counts = request.classification or {}
    tensors = []
    chunks = []
    for name in request.outputs or outputs:
        values = outputs[name][start:stop]
        if name in counts:
            values = classification.classify(values, counts[name], name, labels)
        tensor: dict[str, Any] = {
            "name": name,
            "datatype": datatype_of(values.dtype),
            "shape": [stop - start, *values.shape[1:]],
        }
        if overrides.get(name, default):
            chunk = binary.encode_tensor(values)
            tensor["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        else:
            tensor["data"] = _tensor_data(values)
        tensors.append(tensor)
    head = orjson.dumps(
        {
            "model_name": model_name,
            "model_version": model_version,
            "id": request.id or request_id,
            "outputs": tensors,
        },
        option=DUMP_OPTIONS,
    )
    if not chunks:
        return head
    return Framed(b"".join([head, *chunks]), len(head))


def infer_response(
    model_name: str,
    model_version: str,
    request_id: str,
    outputs: Outputs,
    start: int,
    stop: int,
    wanted: tuple[str, ...] | None,
) -> bytes:
    """``encode_response`` for a request with id ``request_id`` asking for ``wanted``."""
    request = InferRequest(request_id, [], wanted)
    body = encode_response(model_name, model_version, request, request_id, outputs, start, stop)
    assert type(body) is bytes  # no binary outputs were asked for
    return body


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


def tensor_field(inputs: list[Tensor], names: Sequence[str], wanted: str) -> Any:
    """The first row's value of field ``wanted`` in an OIP request: a tensor of that
    name, or its column of a single matrix tensor (row-major, one column per input)."""
    for tensor in inputs:
        if tensor.name == wanted:
            return _python(tensor.data[0]) if len(tensor.data) else None
    if len(inputs) == 1 and wanted in names:
        tensor = inputs[0]
        column = list(names).index(wanted)
        if len(tensor.shape) == 2 and tensor.shape[1] == len(names) and column < len(tensor.data):
            return _python(tensor.data[column])
    return None


def _python(value: Any) -> Any:
    """A value of a JSON tensor as it is; one of a numpy array as a Python value."""
    if isinstance(value, np.generic):
        item = value.item()
        return None if item != item else item  # NaN: null, as JSON would have it
    return value
