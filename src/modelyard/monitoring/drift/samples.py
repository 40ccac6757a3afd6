"""The reference sample and the live window, validated once for the drift tests.

Each feature becomes a ``NumericColumn`` (float64, sorted once: the univariate
statistics reuse the sorted arrays) or a ``CategoricalColumn`` (category counts,
built with a hash table rather than numpy's sort-based ``unique``, which is ten
times slower on a million Python strings). Every error is a ValidationError
that names the feature and says where it is.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard.errors import ValidationError

FloatArray = npt.NDArray[np.float64]

_CATEGORICAL_KINDS = "OUSb"
_NUMERIC_KINDS = "fiu"
_MAX_CODE = 254  # HistGradientBoosting takes categorical codes below 255


@dataclass(frozen=True)
class NumericColumn:
    """Raw values (float64, NaN kept for row alignment) and sorted finite values."""

    name: str
    reference: FloatArray
    live: FloatArray
    reference_sorted: FloatArray
    live_sorted: FloatArray

    @property
    def live_size(self) -> int:
        """Rows of the live window that enter the univariate test."""
        return int(self.live_sorted.size)


@dataclass(frozen=True)
class CategoricalColumn:
    """Raw values and category counts (missing values left out)."""

    name: str
    reference: npt.NDArray[Any]
    live: npt.NDArray[Any]
    reference_counts: dict[Hashable, int]
    live_counts: dict[Hashable, int]

    @property
    def live_size(self) -> int:
        """Rows of the live window that enter the univariate test."""
        return sum(self.live_counts.values())

    def codes(self, values: npt.NDArray[Any]) -> FloatArray:
        """Codes by reference frequency (rarer and unseen categories share 254); NaN if missing."""
        ranked = sorted(self.reference_counts, key=self.reference_counts.__getitem__, reverse=True)
        code = {c: float(min(i, _MAX_CODE)) for i, c in enumerate(ranked)}
        return np.array(
            [math.nan if is_missing(v) else code.get(v, _MAX_CODE) for v in values.tolist()],
            dtype=np.float64,
        )


Column = NumericColumn | CategoricalColumn


def is_missing(value: object) -> bool:
    """None, a float NaN, or pandas' NA / NaT."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return type(value).__name__ in ("NAType", "NaTType")


def as_1d(name: str, values: Any, where: str) -> npt.NDArray[Any]:
    """``values`` as a 1-D array, or a ValidationError naming the feature."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValidationError(
            f"feature {name!r} must be a 1-D array in the {where}, got shape {array.shape}"
        )
    return array


def check_rows(arrays: Mapping[str, npt.NDArray[Any]], where: str) -> int:
    """The common length of a window's columns; raises on ragged or empty windows."""
    first_name, rows = "", -1
    for name, array in arrays.items():
        if rows < 0:
            first_name, rows = name, array.size
        elif array.size != rows:
            raise ValidationError(
                f"feature {name!r} has {array.size} rows in the {where} but feature "
                f"{first_name!r} has {rows}; all columns of the {where} must have the same length"
            )
    if rows == 0:
        raise ValidationError(f"the {where} is empty: feature {first_name!r} has 0 rows")
    return rows


def _to_float(name: str, array: npt.NDArray[Any], where: str) -> FloatArray:
    if array.dtype.kind not in _NUMERIC_KINDS + "O":
        raise ValidationError(
            f"feature {name!r} is numeric in the reference but has dtype {array.dtype} "
            f"in the {where}"
        )
    try:
        return np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError):
        for row, value in enumerate(array.tolist()):
            try:
                float(value)
            except (TypeError, ValueError):
                raise ValidationError(
                    f"feature {name!r} must be a number, got {value!r} (row {row} of the {where})"
                ) from None
        raise  # pragma: no cover - float() accepted every element after all


def _clean_numeric(name: str, raw: FloatArray, where: str, nan_policy: str) -> FloatArray:
    finite = np.isfinite(raw)
    if finite.all():
        return np.sort(raw)
    infinite = np.flatnonzero(np.isinf(raw))
    if infinite.size:
        raise ValidationError(
            f"feature {name!r} must be finite, got {raw[infinite[0]]} "
            f"(row {infinite[0]} of the {where})"
        )
    missing = np.flatnonzero(~finite)
    if nan_policy == "raise":
        raise ValidationError(
            f"feature {name!r} has {missing.size} missing value(s) in the {where} "
            f"(first at row {missing[0]}); use DriftConfig(nan_policy='omit') to drop them"
        )
    if missing.size == raw.size:
        raise ValidationError(f"feature {name!r} has only missing values in the {where}")
    return np.sort(raw[finite])


def _count(name: str, array: npt.NDArray[Any], where: str, nan_policy: str) -> dict[Hashable, int]:
    counts: dict[Hashable, int]
    if array.dtype.kind in "biuf":
        keys, freq = np.unique(array, return_counts=True)
        counts = dict(zip(keys.tolist(), freq.tolist(), strict=True))
    else:
        counts = dict(Counter(array.tolist()))
    missing = [k for k in counts if is_missing(k)]
    if not missing:
        return counts
    n_missing = sum(counts.pop(k) for k in missing)
    if nan_policy == "raise":
        row = next(i for i, v in enumerate(array.tolist()) if is_missing(v))
        raise ValidationError(
            f"feature {name!r} has {n_missing} missing value(s) in the {where} "
            f"(first at row {row}); use DriftConfig(nan_policy='omit') to drop them"
        )
    if not counts:
        raise ValidationError(f"feature {name!r} has only missing values in the {where}")
    return counts


def column(
    name: str,
    ref_array: npt.NDArray[Any],
    live_array: npt.NDArray[Any],
    categorical_features: Collection[str],
    nan_policy: str,
    live_where: str = "live window",
) -> Column:
    """Validate one feature: numeric or categorical by the reference dtype, unless forced."""
    forced = name in categorical_features
    if forced or ref_array.dtype.kind in _CATEGORICAL_KINDS:
        if not forced and live_array.dtype.kind not in _CATEGORICAL_KINDS:
            raise ValidationError(
                f"feature {name!r} is categorical in the reference (dtype {ref_array.dtype}) "
                f"but has dtype {live_array.dtype} in the {live_where}"
            )
        return CategoricalColumn(
            name,
            ref_array,
            live_array,
            _count(name, ref_array, "reference", nan_policy),
            _count(name, live_array, live_where, nan_policy),
        )
    if ref_array.dtype.kind not in _NUMERIC_KINDS:
        raise ValidationError(
            f"feature {name!r} has unsupported dtype {ref_array.dtype}; "
            "expected numbers, strings or booleans"
        )
    ref_raw = np.asarray(ref_array, dtype=np.float64)
    live_raw = _to_float(name, live_array, live_where)
    return NumericColumn(
        name,
        ref_raw,
        live_raw,
        _clean_numeric(name, ref_raw, "reference", nan_policy),
        _clean_numeric(name, live_raw, live_where, nan_policy),
    )


def prepare(
    reference: Mapping[str, Any],
    live: Mapping[str, Any],
    categorical_features: Collection[str],
    nan_policy: str,
) -> tuple[list[Column], int, int]:
    """Validate a reference and a live window: ``(columns, reference rows, live rows)``."""
    if not reference:
        raise ValidationError("the reference has no features")
    missing = [name for name in reference if name not in live]
    extra = [name for name in live if name not in reference]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing from the live window: {', '.join(map(repr, missing))}")
        if extra:
            parts.append(f"not in the reference: {', '.join(map(repr, extra))}")
        raise ValidationError(
            "the live window's features differ from the reference's; " + "; ".join(parts)
        )
    ref_arrays = {name: as_1d(name, values, "reference") for name, values in reference.items()}
    live_arrays = {name: as_1d(name, live[name], "live window") for name in reference}
    n_reference = check_rows(ref_arrays, "reference")
    n_live = check_rows(live_arrays, "live window")
    columns = [
        column(name, ref_arrays[name], live_arrays[name], categorical_features, nan_policy)
        for name in reference
    ]
    return columns, n_reference, n_live
