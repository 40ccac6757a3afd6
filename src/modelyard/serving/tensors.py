"""Open Inference Protocol tensors: datatypes, request tensors and their flattening.

The protocol sends a tensor as ``{"name", "datatype", "shape", "data"}`` with
``data`` either flat or nested in row-major order. This module checks that
structure (a broken one is a 400, ``MalformedRequestError``; one declaring
more values than a request may hold is a 413) and hands the
validators a flat Python list; whether the values suit the model is decided
later, against its signature (a 422).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelyard.errors import PayloadTooLargeError
from modelyard.serving.errors import MalformedRequestError

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
    """A request tensor whose structure has been checked; ``data`` is flat, row-major."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: list[Any]


def check_tensor(raw: object, position: int) -> None:
    """Check the structure of one ``$request_input`` object (everything but its size)."""
    if type(raw) is not dict:
        raise MalformedRequestError(f"inputs[{position}] must be an object, got {_kind(raw)}")
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
    params = check_parameters(raw.get("parameters", {}), f"input {name!r}: ")
    if "data" not in raw:
        if "binary_data_size" in params:
            raise MalformedRequestError(
                f"input {name!r}: binary tensor data is not supported; send the values in 'data'"
            )
        raise MalformedRequestError(f"input {name!r} has no 'data'")
    if type(raw["data"]) is not list:
        raise MalformedRequestError(
            f"input {name!r}: 'data' must be a list, got {_kind(raw['data'])}"
        )


_PARAMETER_TYPES = frozenset({str, int, float, bool})


def check_parameters(params: object, where: str = "") -> dict[str, Any]:
    """A ``$parameters`` object: string keys, each value a string, number or boolean."""
    if type(params) is not dict:
        raise MalformedRequestError(f"{where}'parameters' must be an object")
    for key, value in params.items():
        if type(value) not in _PARAMETER_TYPES:
            raise MalformedRequestError(
                f"{where}parameter {key!r} must be a string, number or boolean, got {_kind(value)}"
            )
    return params


def parse_tensor(raw: dict[str, Any], max_values: int) -> Tensor:
    """Flatten the data of a tensor that passed ``check_tensor``.

    ``max_values`` bounds the element count the shape may declare, so a huge
    declared shape is refused before any work is done on it.
    """
    name: str = raw["name"]
    shape: list[int] = raw["shape"]
    size = math.prod(shape)
    if size > max_values:
        raise PayloadTooLargeError(
            f"input {name!r}: shape {shape} declares {size} values, more than the "
            f"{max_values} this server accepts in one request (rows x fields, at most "
            "max_rows rows)"
        )
    return Tensor(name, raw["datatype"], tuple(shape), flatten(raw["data"], shape, name))


def flatten(data: object, shape: list[int], name: str) -> list[Any]:
    """Row-major values of ``data``, given flat or fully nested to match ``shape``."""
    if type(data) is not list:
        raise MalformedRequestError(f"input {name!r}: 'data' must be a list, got {_kind(data)}")
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
                f"(expected a list at depth {depth + 1}, got {_kind(item)})"
            )
        flat.extend(_flatten_nested(item, shape, depth + 1, name))
    return flat


def json_kind(value: object) -> str:
    """How a JSON value reads in an error message: ``'abc'``, ``null``, ``a list``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return repr(text)
    if isinstance(value, int | float):
        return repr(value)
    return _kind(value)


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return json_kind(value) if value is None or isinstance(value, str | bool) else "a number"


def names_list(names: Iterable[str], limit: int = 8) -> str:
    """``'a', 'b', 'c'`` (and how many more), for messages that list fields."""
    items = list(names)
    shown = ", ".join(repr(n) for n in items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"
