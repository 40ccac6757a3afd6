"""Windowed aggregates of one entity's events as of a time ``t``: the online side's exact
definition (``definitions`` states it; the offline join computes the same in SQL).

Pure numpy over the events the online store holds for the entity. The store keeps
events rather than running totals on purpose: a value written at 10:00 for "count
in the last hour" is wrong at 10:30 unless something rewrites it, a late event would
need every total it touches corrected, and two writers updating one total race;
events appended and summed at read time are exact at any ``t``, need no correction
and commute. A read costs O(the entity's events in the largest window).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard.features.definitions import Aggregation

FloatArray = npt.NDArray[np.float64]


def aggregate(
    event_times: FloatArray,
    columns: Mapping[str, npt.NDArray[Any]],
    aggregations: Sequence[Aggregation],
    t: float,
) -> dict[str, Any]:
    """Each aggregation's value as of ``t`` over events with time in ``(t - window, t]``.

    ``event_times`` are epoch seconds, one per event (any order); ``columns`` hold each
    aggregated column's values in the same order (nulls as NaN or None). Values are
    plain Python (``int``, ``float``, or ``None`` for an empty window where the
    definition says null)."""
    times = np.asarray(event_times, dtype=np.float64)
    values: dict[str, Any] = {}
    for aggregation in aggregations:
        inside = (times > t - aggregation.window_s) & (times <= t)
        function = aggregation.function
        name = aggregation.feature_name
        if function == "count":
            values[name] = int(np.count_nonzero(inside))
            continue
        if function == "time_since_last":
            values[name] = float(t - times[inside].max()) if inside.any() else None
            continue
        assert aggregation.column is not None
        column = np.asarray(columns[aggregation.column])[inside]
        if function == "distinct":
            values[name] = len({v for v in column.tolist() if not _missing(v)})
            continue
        numbers = column.astype(np.float64)
        numbers = numbers[~np.isnan(numbers)]
        if function == "sum":
            total = float(numbers.sum()) if numbers.size else 0.0
            values[name] = int(total) if column.dtype.kind in "iu" else total
        elif not numbers.size:
            values[name] = None
        elif function == "mean":
            values[name] = float(numbers.mean())
        elif function == "min":
            values[name] = _like(column, numbers.min())
        else:
            values[name] = _like(column, numbers.max())
    return values


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _like(column: npt.NDArray[Any], value: np.floating[Any]) -> int | float:
    return int(value) if column.dtype.kind in "iu" else float(value)


def horizon(aggregations: Sequence[Aggregation]) -> float:
    """How far back an entity's events matter: the largest window (0 without any)."""
    return max((a.window_s for a in aggregations), default=0.0)
