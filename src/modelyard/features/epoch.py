"""Times as the feature store compares them: epoch seconds (float64, UTC).

A number is taken as epoch seconds; a ``datetime`` (pandas' ``Timestamp`` is one), a
``numpy.datetime64`` or an ISO-8601 string is converted, a naive one read as UTC.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard.errors import ValidationError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_seconds(value: Any, what: str) -> float:
    """``value`` as epoch seconds; anything that is not a time is a ``ValidationError``
    naming ``what`` (a column and row, say)."""
    kind = type(value)
    if kind is float or kind is int:
        seconds = float(value)
    elif isinstance(value, datetime):
        seconds = _from_datetime(value)
    elif isinstance(value, bool) or value is None:
        raise ValidationError(f"{what} must be a time (epoch seconds or ISO-8601), got {value!r}")
    elif isinstance(value, int | float | np.integer | np.floating):
        seconds = float(value)
    elif isinstance(value, np.datetime64):
        seconds = _from_datetime64(value, what)
    elif isinstance(value, str):
        try:
            seconds = _from_datetime(datetime.fromisoformat(value))
        except ValueError:
            raise ValidationError(
                f"{what} must be a time (epoch seconds or ISO-8601), got {value!r}"
            ) from None
    else:
        raise ValidationError(
            f"{what} must be a time (epoch seconds or ISO-8601), got {type(value).__name__}"
        )
    if not math.isfinite(seconds):
        raise ValidationError(f"{what} must be a finite time, got {value!r}")
    return seconds


def epoch_column(values: Sequence[Any] | npt.NDArray[Any], what: str) -> npt.NDArray[np.float64]:
    """A column of times as float64 epoch seconds (``what`` names the column in errors)."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind == "M":
            if np.isnat(values).any():
                row = int(np.flatnonzero(np.isnat(values))[0])
                raise ValidationError(f"{what} must be a time, got a null (row {row})")
            return values.astype("datetime64[ns]").astype(np.int64) / 1e9
        if values.dtype.kind in "iuf":
            out = values.astype(np.float64)
            bad = ~np.isfinite(out)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise ValidationError(f"{what} must be a finite time, got {out[row]!r} (row {row})")
            return out
        values = values.tolist()
    if all(type(v) is float for v in values):  # epoch seconds already: check, don't convert
        floats = np.array(values, dtype=np.float64)
        if np.isfinite(floats).all():
            return floats
    out = np.empty(len(values), dtype=np.float64)
    for row, value in enumerate(values):
        out[row] = epoch_seconds(value, f"{what} (row {row})")
    return out


def _from_datetime(value: datetime) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH).total_seconds()


def _from_datetime64(value: np.datetime64, what: str) -> float:
    if np.isnat(value):
        raise ValidationError(f"{what} must be a time, got a null")
    return float(value.astype("datetime64[ns]").astype(np.int64)) / 1e9
