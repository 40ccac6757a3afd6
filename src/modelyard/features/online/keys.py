"""Entity keys as the online store compares them: text (an integer key is its decimal
text, so ``42``, ``numpy.int64(42)`` and ``"42"`` name the same entity)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard.errors import ValidationError


def key_text(value: Any, what: str) -> str:
    """One key as text; a null, a bool, a float or anything else is a ``ValidationError``
    naming ``what``."""
    kind = type(value)
    if kind is str:
        return str(value)
    if kind is int or (isinstance(value, int | np.integer) and not isinstance(value, bool)):
        return str(int(value))
    if isinstance(value, np.str_):
        return str(value)
    raise ValidationError(f"{what} must be a string or an integer, got {value!r}")


def key_texts(values: Sequence[Any] | npt.NDArray[Any], column: str) -> list[str]:
    """A column of keys as text (``column`` names it in errors, with the row)."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind in "iu":
            return [str(v) for v in values.tolist()]
        values = values.tolist()
    if all(type(v) is str for v in values):
        return list(values)
    return [key_text(v, f"entity key {column!r} (row {row})") for row, v in enumerate(values)]
