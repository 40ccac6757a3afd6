"""A batch of pushed events, checked whole against its stream before anything is written.

Events arrive as a list of dicts (JSON), a dict of columns, or a pandas, polars or Arrow
frame; they leave as columns of plain Python values typed as the stream declares
(``EventBatch``), with each event's entity key as text, its time in epoch seconds and
its id. A missing or unknown column, a value of the wrong type or a null where one is
not allowed is a ``ValidationError`` naming the column, the row and what is allowed.

An event without an ``event_id`` gets one derived from its content (stream, key, time
and fields), so a replay of the same events is recognised as one; two events that
really are identical need ids of their own.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from modelyard.errors import ValidationError
from modelyard.features.definitions import Dtype, StreamSource
from modelyard.features.epoch import epoch_column
from modelyard.features.online.keys import key_texts

EVENT_ID = "event_id"
Column = list[Any] | npt.NDArray[Any]


@dataclass(frozen=True)
class EventBatch:
    """Validated events, column by column, in the order they arrived."""

    stream: StreamSource
    key_column: str
    key_dtype: Dtype
    keys: list[str]  # the entity key as the online store compares it
    key_values: list[Any]  # the entity key typed as declared (what the offline file keeps)
    times: npt.NDArray[np.float64]
    ids: list[str]
    columns: dict[str, list[Any]]  # each of the stream's fields, typed as declared

    def __len__(self) -> int:
        return len(self.keys)


def event_batch(stream: StreamSource, key_column: str, key_dtype: Dtype, events: Any) -> EventBatch:
    """Check ``events`` against ``stream`` (keyed by ``key_column`` of ``key_dtype``) and
    return them typed; nothing is written here."""
    columns, n = _columns(events)
    if n == 0 and not columns:  # an empty list: nothing to check
        empty = np.empty(0, dtype=np.float64)
        no_fields: dict[str, list[Any]] = {f.name: [] for f in stream.fields}
        return EventBatch(stream, key_column, key_dtype, [], [], empty, [], no_fields)
    fields = {f.name: f.dtype for f in stream.fields}
    allowed = {key_column, stream.event_time, EVENT_ID, *fields}
    unknown = sorted(set(columns) - allowed)
    if unknown:
        raise ValidationError(
            f"stream {stream.name!r} has no column(s) {unknown}; it takes {sorted(allowed)}"
        )
    missing = [c for c in (key_column, stream.event_time, *fields) if c not in columns]
    if missing:
        raise ValidationError(
            f"events for stream {stream.name!r} lack column(s) {missing} "
            f"(every event carries {[key_column, stream.event_time, *fields]})"
        )
    typed = {
        name: _typed(columns[name], dtype, f"column {name!r} ({dtype})", nullable=True)
        for name, dtype in fields.items()
    }
    key_values = _typed(columns[key_column], key_dtype, f"entity key {key_column!r}", False)
    keys = key_texts(key_values, key_column)
    times = epoch_column(columns[stream.event_time], f"event time {stream.event_time!r}")
    if EVENT_ID in columns and EVENT_ID not in fields:
        ids = _given_ids(columns[EVENT_ID])
    else:
        ids = _derived_ids(stream, keys, times, typed)
    return EventBatch(stream, key_column, key_dtype, keys, key_values, times, ids, typed)


# -- input shapes -------------------------------------------------------------------------


def _columns(events: Any) -> tuple[dict[str, Column], int]:
    module = type(events).__module__.split(".")[0]
    if module == "pandas":
        import pyarrow as pa  # here: it is slow to import, and only frames need it

        return _arrow_columns(pa.Table.from_pandas(events, preserve_index=False))
    if module == "polars":
        return _arrow_columns(events.to_arrow())
    if module == "pyarrow":
        return _arrow_columns(events)
    if isinstance(events, Mapping):
        lengths = {name: len(values) for name, values in events.items()}
        if len(set(lengths.values())) > 1:
            raise ValidationError(f"event columns differ in length: {lengths}")
        return dict(events), next(iter(lengths.values()), 0)
    if isinstance(events, Sequence) and not isinstance(events, str | bytes):
        return _row_columns(events)
    raise ValidationError(
        "events must be a list of dicts, a dict of columns, or a pandas, polars or "
        f"Arrow frame, got {type(events).__name__}"
    )


def _row_columns(rows: Sequence[Any]) -> tuple[dict[str, Column], int]:
    if not rows:
        return {}, 0
    for row, event in enumerate(rows):
        if not isinstance(event, Mapping):
            raise ValidationError(f"event {row} must be an object, got {type(event).__name__}")
    names = rows[0].keys()
    for row, event in enumerate(rows):
        if event.keys() != names:
            lacks = sorted(set(names) - set(event))
            extra = sorted(set(event) - set(names))
            raise ValidationError(
                f"event {row} has other columns than event 0: lacks {lacks}, adds {extra}"
            )
    return {name: [event[name] for event in rows] for name in names}, len(rows)


def _arrow_columns(table: Any) -> tuple[dict[str, Column], int]:
    import pyarrow as pa

    columns: dict[str, Column] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_timestamp(column.type):
            # datetime64 keeps the instant (Arrow stores UTC); epoch_column converts it
            chunked = column if isinstance(column, pa.ChunkedArray) else pa.chunked_array([column])
            columns[name] = chunked.to_numpy()
        else:
            columns[name] = column.to_pylist()
    return columns, table.num_rows


# -- values -------------------------------------------------------------------------------

_ALLOWED: dict[str, str] = {
    "int64": "an integer",
    "float64": "a number",
    "float32": "a number",
    "string": "a string",
    "bool": "true or false",
}


def _typed(values: Column, dtype: Dtype, what: str, nullable: bool) -> list[Any]:
    """``values`` as plain Python values of ``dtype``; the first bad one is an error."""
    if isinstance(values, np.ndarray):
        values = values.tolist()
    kinds = set(map(type, values))
    if dtype in ("float64", "float32"):
        if kinds <= {float}:
            return _nulls_checked(list(values), what, nullable, nan_is_null=True)
        if kinds <= {float, int, type(None)}:
            return _nulls_checked(
                [v if v is None else float(v) for v in values], what, nullable, nan_is_null=True
            )
    elif dtype == "int64":
        if kinds <= {int}:
            return list(values)
        if kinds <= {int, float, type(None)} and all(
            v is None or type(v) is int or (math.isnan(v) or v.is_integer()) for v in values
        ):
            # a pandas integer column with missing values arrives as floats with NaN
            converted = [
                None if v is None or (type(v) is float and math.isnan(v)) else int(v)
                for v in values
            ]
            return _nulls_checked(converted, what, nullable, nan_is_null=False)
    elif dtype == "string":
        if kinds <= {str} or kinds <= {str, type(None)}:
            return _nulls_checked(list(values), what, nullable, nan_is_null=False)
    elif kinds <= {bool, type(None)}:
        return _nulls_checked(list(values), what, nullable, nan_is_null=False)
    out = [_one(value, dtype, what, row, nullable) for row, value in enumerate(values)]
    return out


def _one(value: Any, dtype: Dtype, what: str, row: int, nullable: bool) -> Any:
    """One value the fast paths did not take: converted, or the error that names it."""
    if value is None and nullable:
        return None
    if dtype in ("float64", "float32"):
        if isinstance(value, int | float | np.integer | np.floating) and not isinstance(
            value, bool | np.bool_
        ):
            converted = float(value)
            if converted == converted or nullable:
                return None if converted != converted else converted
    elif dtype == "int64":
        if isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
            return int(value)
    elif dtype == "string":
        if isinstance(value, str):
            return str(value)
    elif isinstance(value, bool | np.bool_):
        return bool(value)
    raise ValidationError(
        f"{what} must be {_ALLOWED[dtype]}{' or null' if nullable else ''}, "
        f"got {value!r} (row {row})"
    )


def _nulls_checked(values: list[Any], what: str, nullable: bool, nan_is_null: bool) -> list[Any]:
    if nan_is_null:
        values = [None if v is None or v != v else v for v in values]
    if not nullable and None in values:
        raise ValidationError(f"{what} must not be null (row {values.index(None)})")
    return values


# -- ids ----------------------------------------------------------------------------------


def _given_ids(values: Column) -> list[str]:
    ids = values.tolist() if isinstance(values, np.ndarray) else list(values)
    if all(type(v) is str and v and "\0" not in v for v in ids):
        return ids
    out = []
    for row, value in enumerate(ids):
        if isinstance(value, int | np.integer) and not isinstance(value, bool):
            out.append(str(int(value)))
        elif isinstance(value, str) and value and "\0" not in value:
            out.append(value)
        else:
            raise ValidationError(
                f"column 'event_id' must be a non-empty string or an integer, got {value!r} "
                f"(row {row})"
            )
    return out


def _derived_ids(
    stream: StreamSource,
    keys: list[str],
    times: npt.NDArray[np.float64],
    columns: Mapping[str, list[Any]],
) -> list[str]:
    fields = [columns[f.name] for f in stream.fields]
    ids = []
    for row, (key, t) in enumerate(zip(keys, times.tolist(), strict=True)):
        content = orjson.dumps([stream.name, key, t, *(field[row] for field in fields)])
        ids.append(hashlib.blake2b(content, digest_size=16).hexdigest())
    return ids
