"""The Open Inference Protocol over gRPC: ``ModelInferRequest`` in, ``ModelInferResponse`` out.

The messages are KServe's (``proto/open_inference_grpc.proto``). A request becomes the
same ``oip.InferRequest`` the REST route builds, so the validators, the batcher and the
inference log cannot tell the two apart; a broken envelope is a ``MalformedRequestError``
naming the message's field, in the words the JSON form uses where the two agree.

An input's values come either raw (``raw_input_contents``: one entry per input, laid
out as the binary tensor data extension lays them out, ``wire.binary``) or in the typed
field of its datatype (``contents.fp32_contents`` and so on). Raw values become a numpy
array over the message's bytes, without a copy. Typed values become an array too,
except in the fields wider than their datatype (``int_contents`` holds INT8 and INT16,
``uint_contents`` UINT8 and UINT16): those stay a list, whose values are range-checked
as the JSON form's are (``300`` in an INT8 tensor is refused, not wrapped).

Answers always carry raw outputs (``raw_output_contents``), as Triton's server does:
one ``tobytes`` per output rather than a Python value per element, and what
``tritonclient`` reads fastest.

Pure functions over messages; the gRPC transport is ``serving.grpc``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from modelyard.errors import MalformedRequestError
from modelyard.serving.wire import binary, classification, oip
from modelyard.serving.wire.proto.messages import (
    InferParameter,
    InferTensorContents,
    ModelInferRequest,
    ModelInferResponse,
    ModelMetadataResponse,
)

Outputs = dict[str, np.ndarray]

# The typed field of each datatype's values (FP16 has none: it travels raw).
CONTENTS_FIELD: dict[str, str] = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
# Datatypes narrower than their field: their values are checked one by one.
_NARROW = frozenset({"INT8", "INT16", "UINT8", "UINT16"})


def parse_request(message: ModelInferRequest, max_values: int) -> oip.InferRequest:
    """Check a ``ModelInferRequest``'s envelope and take its tensors' values.

    The whole structure is checked before any tensor's size or values, as the JSON
    form's is, so a request malformed anywhere gets the same error whichever comes first.
    """
    inputs = message.inputs
    if not inputs:
        raise MalformedRequestError("'inputs' must hold at least one tensor")
    raw = message.raw_input_contents
    if raw and len(raw) != len(inputs):
        raise MalformedRequestError(
            f"raw_input_contents has {len(raw)} entries for {len(inputs)} inputs; send one "
            "per input, in the order of 'inputs'"
        )
    for position, tensor in enumerate(inputs):
        _check_tensor(tensor, position, bool(raw))
    parameters = _parameters(message.parameters, "")
    timeout_s = oip.check_timeout(parameters.get("timeout"))
    outputs, counts = _requested_outputs(message)
    tensors = [
        _raw_tensor(tensor, position, raw[position], max_values)
        if raw
        else _typed_tensor(tensor, max_values)
        for position, tensor in enumerate(inputs)
    ]
    return oip.InferRequest(
        message.id or None, tensors, outputs, timeout_s, classification=counts or None
    )


def _check_tensor(tensor: ModelInferRequest.InferInputTensor, position: int, raw: bool) -> None:
    """The structure of ``inputs[position]`` (everything but its size and values)."""
    name = tensor.name
    if not name:
        raise MalformedRequestError(f"inputs[{position}] needs a non-empty 'name'")
    if tensor.datatype not in oip.DATATYPES:
        raise MalformedRequestError(
            f"input {name!r}: 'datatype' must be one of {', '.join(sorted(oip.DATATYPES))}, "
            f"got {tensor.datatype!r}"
        )
    shape = list(tensor.shape)
    if not shape or min(shape) < 0:
        raise MalformedRequestError(
            f"input {name!r}: 'shape' must be a non-empty list of non-negative integers, "
            f"got {shape!r}"
        )
    _parameters(tensor.parameters, f"input {name!r}: ")
    has_contents = tensor.HasField("contents")
    if raw and has_contents:
        raise MalformedRequestError(
            f"input {name!r} has 'contents' but the request has raw_input_contents; send "
            "every input's values one way"
        )
    if not raw and not has_contents:
        raise MalformedRequestError(
            f"input {name!r} has no values: send them in its 'contents' or in raw_input_contents"
        )


def _raw_tensor(
    tensor: ModelInferRequest.InferInputTensor, position: int, chunk: bytes, max_values: int
) -> oip.Tensor:
    name, datatype, shape = tensor.name, tensor.datatype, list(tensor.shape)
    size = oip.check_size(name, shape, max_values)
    dtype = binary.DTYPES.get(datatype)
    if dtype is not None and len(chunk) != size * dtype.itemsize:
        raise MalformedRequestError(
            f"input {name!r}: raw_input_contents[{position}] has {len(chunk)} bytes but shape "
            f"{shape} of {datatype} needs {size * dtype.itemsize} ({size} values of "
            f"{dtype.itemsize} bytes)"
        )
    values = binary.decode_tensor(name, datatype, shape, memoryview(chunk))
    return oip.Tensor(name, datatype, tuple(shape), values)


def _typed_tensor(tensor: ModelInferRequest.InferInputTensor, max_values: int) -> oip.Tensor:
    name, datatype, shape = tensor.name, tensor.datatype, list(tensor.shape)
    size = oip.check_size(name, shape, max_values)
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        raise MalformedRequestError(
            f"input {name!r}: {datatype} values travel in raw_input_contents (the protocol "
            "has no typed field for them)"
        )
    contents: InferTensorContents = tensor.contents
    given = [described.name for described, _ in contents.ListFields()]
    if given and given != [field]:
        raise MalformedRequestError(
            f"input {name!r} of datatype {datatype} takes its values in contents.{field}, "
            f"got contents.{', contents.'.join(given)}"
        )
    values: Sequence[Any] = getattr(contents, field)
    if len(values) != size:
        raise MalformedRequestError(
            f"input {name!r}: shape {shape} holds {size} values but contents.{field} has "
            f"{len(values)}"
        )
    data: list[Any] | np.ndarray
    if datatype == "BYTES":
        data = [binary.bytes_element(name, item, i) for i, item in enumerate(values)]
    elif datatype in _NARROW:
        data = list(values)
    else:
        data = np.asarray(values, dtype=binary.DTYPES[datatype])
    return oip.Tensor(name, datatype, tuple(shape), data)


def _parameters(parameters: Mapping[str, InferParameter], where: str) -> dict[str, Any]:
    """A ``parameters`` map as the JSON form's object: each value a bool, int, str or
    float."""
    found: dict[str, Any] = {}
    for key, parameter in parameters.items():
        kind = parameter.WhichOneof("parameter_choice")
        if kind is None:
            raise MalformedRequestError(f"{where}parameter {key!r} has no value")
        found[key] = getattr(parameter, kind)
    return found


def _requested_outputs(
    message: ModelInferRequest,
) -> tuple[tuple[str, ...] | None, dict[str, int]]:
    """The outputs the request names (None: all), and those asked as classifications."""
    if not message.outputs:
        return None, {}
    names = []
    counts: dict[str, int] = {}
    for position, output in enumerate(message.outputs):
        if not output.name:
            raise MalformedRequestError(f"outputs[{position}] needs a non-empty 'name'")
        names.append(output.name)
        options = _parameters(output.parameters, f"outputs[{position}]: ")
        count = classification.requested_count(output.name, options)
        if count is not None:
            counts[output.name] = count
    return tuple(names), counts


def encode_response(
    model_name: str,
    model_version: str,
    request: oip.InferRequest,
    request_id: str,
    outputs: Outputs,
    start: int,
    stop: int,
    labels: Sequence[str] = (),
) -> bytes:
    """The serialised ``ModelInferResponse`` to ``request`` for rows ``start:stop`` of a
    batch's outputs: its own ``id`` (else ``request_id``), the outputs it names (else
    all), each raw; ``labels``: the version's class names, for classifications."""
    response = ModelInferResponse(
        model_name=model_name, model_version=model_version, id=request.id or request_id
    )
    counts = request.classification or {}
    tensors = response.outputs
    raw = response.raw_output_contents
    for name in request.outputs or outputs:
        values = outputs[name][start:stop]
        if name in counts:
            values = classification.classify(values, counts[name], name, labels)
        tensors.add(
            name=name,
            datatype=oip.datatype_of(values.dtype),
            shape=[stop - start, *values.shape[1:]],
        )
        raw.append(binary.encode_tensor(values))
    return response.SerializeToString()


def metadata_response(
    name: str, versions: list[str], platform: str, tensors: Mapping[str, Any]
) -> ModelMetadataResponse:
    """A ``ModelMetadataResponse`` from the REST metadata's ``inputs`` and ``outputs``
    (``oip.tensor_metadata``); a matrix input's field order, which the message has no
    place for on a tensor, goes in ``properties["fields"]`` (a JSON list)."""
    response = ModelMetadataResponse(name=name, versions=versions, platform=platform)
    for key, into in (("inputs", response.inputs), ("outputs", response.outputs)):
        for tensor in tensors[key]:
            into.add(name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"])
            fields = tensor.get("parameters", {}).get("fields")
            if fields is not None:
                response.properties["fields"] = orjson.dumps(fields).decode()
    return response
