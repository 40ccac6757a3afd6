"""A SQL source's rows in a DuckDB table: read through SQLAlchemy in chunks
(``offline/sql.py``), each chunk normalised in Python on its way in.

The database hands back Python values whose types depend on the driver (SQLite keeps
times as text, PostgreSQL gives datetimes, decimals come as ``Decimal``), so each
chunk is converted here to one fixed Arrow schema: the entity key as the entity
declares it, ``"my.ts"``/``"my.c"`` as float64 epoch seconds (naive datetimes UTC,
exactly as ``timedelta.total_seconds`` counts), ``"my.o"`` the read order, each plain
feature as declared, other columns as numbers (float64) or as Arrow infers them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import duckdb

from modelyard.errors import ValidationError
from modelyard.features.definitions import Dtype, FeatureView, SqlSource
from modelyard.features.offline.engine import run
from modelyard.features.offline.frames import require
from modelyard.features.offline.sql import read_rows

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def load_rows(
    con: duckdb.DuckDBPyConnection,
    view: FeatureView,
    columns: Sequence[str],
    declared: dict[str, Dtype],
    url: str,
    table: str,
    chunk_rows: int,
) -> None:
    """Create the DuckDB table ``table`` (quoted) from the rows of ``view``'s SQL source:
    its key, ``"my.ts"``, ``"my.c"``, ``"my.o"`` and ``columns`` (``declared`` gives the
    dtype of those that are plain features)."""
    source = view.source
    assert isinstance(source, SqlSource)
    pa = require("pyarrow")
    what = f"the SQL source {source.query!r} of view {view.name!r}"
    key = view.entity.key
    created = source.created_time
    read = list(dict.fromkeys([key, source.event_time, *([created] if created else []), *columns]))
    types = _arrow_types(pa, view, columns, declared)
    order = 0
    chunks = read_rows(source, url, read, chunk_rows, what)
    for rows in chunks:
        _append(con, table, _chunk(pa, view, read, columns, rows, order, types), order == 0, what)
        order += len(rows)
    if order == 0:
        _append(con, table, _chunk(pa, view, read, columns, [], 0, types), True, what)


def _append(con: duckdb.DuckDBPyConnection, table: str, chunk: Any, first: bool, what: str) -> None:
    con.register("my_chunk", chunk)
    try:
        if first:
            run(con, f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM my_chunk", what)
        else:
            run(con, f"INSERT INTO {table} SELECT * FROM my_chunk", what)
    finally:
        con.unregister("my_chunk")


def _arrow_types(
    pa: Any, view: FeatureView, columns: Sequence[str], declared: dict[str, Any]
) -> dict[str, Any]:
    arrow = {
        "int64": pa.int64(),
        "float64": pa.float64(),
        "float32": pa.float32(),
        "string": pa.string(),
        "bool": pa.bool_(),
    }
    out = {view.entity.key: arrow[view.entity.dtype]}
    for name in columns:
        out[name] = arrow[declared[name]] if name in declared else None  # None: inferred
    return out


def _chunk(
    pa: Any,
    view: FeatureView,
    read: Sequence[str],
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    first: int,
    types: dict[str, Any],
) -> Any:
    """One chunk of SQL rows as the Arrow table the DuckDB table is made of."""
    source = view.source
    assert isinstance(source, SqlSource)
    values = {name: [row[i] for row in rows] for i, name in enumerate(read)}
    times = [
        _seconds(v, f"event time {_col(view, source.event_time)} (row {first + i})")
        for i, v in enumerate(values[source.event_time])
    ]
    created = times
    if source.created_time is not None:
        what = f"created time {_col(view, source.created_time)}"
        created = [
            t if c is None else _seconds(c, f"{what} (row {first + i})")
            for i, (c, t) in enumerate(zip(values[source.created_time], times, strict=True))
        ]
    key = view.entity.key
    arrays: dict[str, Any] = {
        key: _typed(pa, values[key], types[key], f"entity key {_col(view, key)}"),
        "my.ts": pa.array(times, pa.float64()),
        "my.c": pa.array(created, pa.float64()),
        "my.o": pa.array(range(first, first + len(rows)), pa.int64()),
    }
    for name in columns:
        arrays[name] = _typed(pa, values[name], types.get(name), f"column {_col(view, name)}")
    return pa.table(arrays)


def _typed(pa: Any, values: list[Any], arrow_type: Any, what: str) -> Any:
    cleaned = [_plain(v) for v in values]
    if arrow_type is None:
        numbers = all(
            v is None or isinstance(v, int | float) and not isinstance(v, bool) for v in cleaned
        )
        arrow_type = pa.float64() if numbers else None
    elif pa.types.is_boolean(arrow_type):
        cleaned = [bool(v) if isinstance(v, int) else v for v in cleaned]
    try:
        return pa.array(cleaned, type=arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as error:
        raise ValidationError(f"{what} holds values that are not {arrow_type}: {error}") from error


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


def _seconds(value: Any, what: str) -> float | None:
    """A SQL value as epoch seconds: numbers are seconds; datetimes (naive ones UTC),
    dates and ISO-8601 text (SQLite keeps times as text) are converted."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError(f"{what} must be a time, got {value!r}") from None
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return (aware - _EPOCH).total_seconds() + 0.0
    if isinstance(value, date):
        return float((value - date(1970, 1, 1)).days * 86400)
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        seconds = float(value) + 0.0
        return None if math.isnan(seconds) else seconds
    raise ValidationError(f"{what} must be a time, got {type(value).__name__}")


def _col(view: FeatureView, column: str) -> str:
    return f"{column!r} of view {view.name!r}"
