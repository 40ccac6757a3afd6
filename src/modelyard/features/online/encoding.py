"""How both online stores turn a row's values into bytes and back (orjson).

JSON keeps the types a feature can have apart: an int comes back an int, a float a
float (``1.0`` stays ``1.0``), ``None`` stays ``None``, a string a string, a bool a
bool. numpy scalars are written as the Python values they hold. A NaN float is
written as ``null``: online a missing number and a NaN read the same, as null.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from modelyard.errors import ValidationError

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def encode_values(values: Mapping[str, Any]) -> bytes:
    """A row's values as compact JSON bytes."""
    try:
        return orjson.dumps(values, option=_OPTIONS)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        if not isinstance(values, dict):  # another Mapping: orjson takes dicts only
            return encode_values(dict(values))
        raise ValidationError(
            f"feature values must be numbers, strings, booleans or null: {exc}"
        ) from exc


def decode_values(data: bytes | str) -> dict[str, Any]:
    """The values ``encode_values`` wrote."""
    decoded: dict[str, Any] = orjson.loads(data)
    return decoded
