"""Turning JSON values into numpy columns for one signature field, strictly.

numpy's own conversion is lenient in ways a validator must not be:
``np.array([1, "2"], dtype=np.float32)`` parses the string, ``True`` becomes 1.0
and ``None`` becomes NaN. So the Python types are checked first (one
``set(map(type, values))``, about a microsecond for a row of 30), and numpy
converts only lists already known to be clean. Anything else takes a slow path
whose only job is to name the first bad value, its field and its row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from modelyard.errors import ValidationError
from modelyard.registry.signature import FieldSpec
from modelyard.serving.wire.messages import json_kind

# Where the i-th value of a flat list lives: (field name, row number).
Locate = Callable[[int], tuple[str, int]]

NUMBER_TYPES = frozenset({int, float})
FAST_TYPES: dict[str, frozenset[type]] = {
    "number": NUMBER_TYPES,
    "integer": frozenset({int}),
    "boolean": frozenset({bool}),
    "string": frozenset({str}),
}
_WHAT = {
    "number": "a number",
    "integer": "an integer",
    "boolean": "true or false",
    "string": "a string",
}


def value_range(dtype: np.dtype[Any]) -> tuple[float, float] | None:
    """The finite range a JSON number must fit to be stored in ``dtype`` (None: no limit)."""
    if dtype.kind == "f" and dtype.itemsize < 8:
        info = np.finfo(dtype)
        return float(info.min), float(info.max)
    if dtype.kind in "iu":
        iinfo = np.iinfo(dtype)
        return int(iinfo.min), int(iinfo.max)  # exact: float(2**63 - 1) rounds up to 2**63
    return None


def bad_value(spec: FieldSpec, value: object, row: int) -> ValidationError:
    """The error for one value that does not suit ``spec``."""
    if value is None and spec.kind == "number":
        return ValidationError(f"field {spec.name!r} must not be null/NaN (row {row})")
    return ValidationError(
        f"field {spec.name!r} must be {_WHAT[spec.kind]}, got {json_kind(value)} (row {row})"
    )


def clean_values(values: list[Any], locate: Locate, lookup: dict[str, FieldSpec]) -> list[Any]:
    """The slow path: return ``values`` with nulls turned to NaN where a field allows NaN,
    integral floats accepted for integer fields, or raise naming the first bad value."""
    cleaned = list(values)
    for i, value in enumerate(values):
        name, row = locate(i)
        spec = lookup[name]
        kind = spec.kind
        if type(value) in FAST_TYPES[kind]:
            continue
        if value is None and kind == "number" and spec.allow_nan:
            cleaned[i] = float("nan")
        elif kind == "integer" and type(value) is float and value.is_integer():
            cleaned[i] = int(value)
        else:
            raise bad_value(spec, value, row)
    return cleaned


def check_range(
    values: list[Any], limits: tuple[float, float], spec_of: Locate, cleaned: bool
) -> None:
    """Raise if a number does not fit the target dtype (1e39 into float32, 2**63 into int64).

    ``cleaned`` says NaN may be present (nulls turned into NaN by ``clean_values``);
    JSON itself has no NaN, so the fast path skips filtering them out.
    """
    low, high = limits
    finite = [v for v in values if v == v] if cleaned else values  # NaN compares false
    if not finite or (min(finite) >= low and max(finite) <= high):
        return
    for i, value in enumerate(values):
        if value == value and not low <= value <= high:
            name, row = spec_of(i)
            raise ValidationError(
                f"field {name!r} value {value!r} is out of range [{low:g}, {high:g}] (row {row})"
            )


def check_bounds(matrix: np.ndarray, lows: np.ndarray, highs: np.ndarray, names: list[str]) -> None:
    """Raise naming the first value outside its field's declared minimum/maximum."""
    below = matrix < lows
    above = matrix > highs
    if not (below.any() or above.any()):
        return
    rows, cols = np.nonzero(below | above)
    row, col = int(rows[0]), int(cols[0])
    value = matrix[row, col].item()
    raise ValidationError(
        f"field {names[col]!r} must be within [{lows[col]:g}, {highs[col]:g}], "
        f"got {value!r} (row {row})"
    )


def column(spec: FieldSpec, values: list[Any]) -> np.ndarray:
    """One field's values as a 1-D array of its dtype, checked strictly."""
    kind = spec.kind
    dtype = np.dtype(spec.dtype)

    def locate(i: int) -> tuple[str, int]:
        return spec.name, i

    cleaned = not set(map(type, values)) <= FAST_TYPES[kind]
    if cleaned:
        values = clean_values(values, locate, {spec.name: spec})
    if kind == "string":
        if spec.categories is not None:
            allowed = set(spec.categories)
            for i, value in enumerate(values):
                if value not in allowed:
                    raise ValidationError(
                        f"field {spec.name!r} must be one of {sorted(allowed)!r}, "
                        f"got {json_kind(value)} (row {i})"
                    )
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array
    if kind in ("number", "integer"):
        limits = value_range(dtype)
        if limits is not None:
            check_range(values, limits, locate, cleaned)
    result = np.array(values, dtype=dtype)
    if spec.minimum is not None or spec.maximum is not None:
        low = -np.inf if spec.minimum is None else spec.minimum
        high = np.inf if spec.maximum is None else spec.maximum
        check_bounds(result.reshape(-1, 1), np.array([low]), np.array([high]), [spec.name])
    return result
