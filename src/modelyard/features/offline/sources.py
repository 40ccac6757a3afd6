"""A view's source as DuckDB reads it, with the columns every offline query relies on.

Whatever the source (Parquet or CSV files, a SQL table or query, the events pushed to
a stream), the relation has the same shape::

    "my.k"   the entity key (the source's type; an ENUM as text)
    "my.ts"  the event time, float64 epoch seconds
    "my.c"   the created time, float64 epoch seconds (the event time where the source
             has no created column or a row has none: such a row counts as written
             when it happened)
    "my.o"   the read order (file, then row), the last tie-break
    "my.id"  stream sources only: the pushed event's id
    ...      the view's columns asked for, under their own names

(feature and column names cannot contain a dot, so the internal names never clash).
Rows without a key or an event time are left out: they can match no label. Files
are read by DuckDB (``read_parquet``/``read_csv``) where they lie, so nothing is
loaded into memory up front; a SQL source is read through SQLAlchemy in chunks
(``offline/sqlrows.py``) into a DuckDB table, the only copy the offline store makes.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from modelyard.errors import ValidationError
from modelyard.features.definitions import (
    Aggregation,
    FeatureView,
    FileSource,
    SqlSource,
    StreamSource,
)
from modelyard.features.offline import schema
from modelyard.features.offline.engine import OfflineOptions, column_types, literal, quote, run
from modelyard.features.offline.sqlrows import load_rows

KEY = '"my.k"'
TS = '"my.ts"'
CREATED = '"my.c"'
ORDER = '"my.o"'
EVENT_ID = '"my.id"'
STREAM_CREATED = "_created_at"
STREAM_EVENT_ID = "_event_id"
_FILE_ROWS = 1 << 40  # rows per file in the read order: file_index * 2^40 + row
_SQL_CHUNK_ROWS = 50_000
# Parquet's min/max statistics leave NaN out, and DuckDB (2.0) takes a float column
# whose statistics say nothing of NaN to hold none: ``isnan(x)`` is then folded to
# false and a NaN is summed as a number (duckdb#25521). Say that any float may be NaN.
_NAN = "can_have_nan = true"


@dataclass(frozen=True)
class SourceRelation:
    """The normalised relation of one view's source (see the module docstring)."""

    view: FeatureView
    sql: str
    key_type: str  # DuckDB's type of the entity key
    types: dict[str, str]  # each carried column's DuckDB type
    has_created: bool
    is_stream: bool

    @property
    def what(self) -> str:
        return describe(self.view)


def describe(view: FeatureView) -> str:
    """The source of ``view`` in words, for errors."""
    source = view.source
    if isinstance(source, FileSource):
        return f"the {source.format} source {source.path!r} of view {view.name!r}"
    if isinstance(source, SqlSource):
        return f"the SQL source {source.query!r} of view {view.name!r}"
    return f"the events of stream {source.name!r} (view {view.name!r})"


def open_source(
    con: duckdb.DuckDBPyConnection,
    view: FeatureView,
    plain: Sequence[str],
    aggregations: Sequence[Aggregation],
    options: OfflineOptions,
) -> SourceRelation:
    """The normalised relation of ``view``'s source carrying the plain features ``plain``
    and the columns ``aggregations`` read, with every column checked: it exists, the key
    is of the entity's type, the times are times, each feature holds its declared type
    and each aggregated column suits its function. A check that fails is a
    ``ValidationError`` naming the view, the column and both types."""
    columns = list(dict.fromkeys([*plain, *(a.column for a in aggregations if a.column)]))
    source = view.source
    if isinstance(source, SqlSource):
        return _sql_relation(con, view, source, plain, aggregations, columns, options)
    scan, order, created = _scan(view, options)
    if scan is None:  # a stream nothing was pushed to yet
        return _empty_stream(view, columns)
    types = column_types(con, f"SELECT * FROM {scan}", describe(view))
    _check(view, types, plain, aggregations, created)
    key = view.entity.key
    ts = _epoch(view, types, source.event_time)
    created_sql = ts if created is None else f"coalesce({_epoch(view, types, created)}, {ts})"
    key_sql = quote(key)
    if schema.kind(types[key]) == "string" and types[key].upper() != "VARCHAR":
        key_sql = f"CAST({key_sql} AS VARCHAR)"
    selected = [
        f"{key_sql} AS {KEY}",
        f"{ts} AS {TS}",
        f"{created_sql} AS {CREATED}",
        f"{order} AS {ORDER}",
    ]
    if isinstance(source, StreamSource):
        selected.append(f"{quote(STREAM_EVENT_ID)}::VARCHAR AS {EVENT_ID}")
    selected += [quote(c) for c in columns]
    sql = (
        f"SELECT * FROM (SELECT {', '.join(selected)} FROM {scan} "
        f"WHERE {quote(key)} IS NOT NULL) WHERE {TS} IS NOT NULL AND NOT isnan({TS})"
    )
    key_type = "VARCHAR" if schema.kind(types[key]) == "string" else types[key]
    return SourceRelation(
        view,
        sql,
        key_type,
        {c: types[c] for c in columns},
        created is not None,
        isinstance(source, StreamSource),
    )


def _epoch(view: FeatureView, types: dict[str, str], column: str) -> str:
    return schema.epoch_seconds_sql(
        quote(column), types[column], f"column {column_of(view, column)}"
    )


def _scan(view: FeatureView, options: OfflineOptions) -> tuple[str | None, str, str | None]:
    """DuckDB's table function reading the files, the read order and the created column."""
    source = view.source
    if isinstance(source, FileSource):
        pattern = os.path.expanduser(source.path)
        if not glob.glob(pattern, recursive=True):
            raise ValidationError(f"view {view.name!r}: no file matches {source.path!r}")
        if source.format == "csv":
            return (
                f"read_csv({literal(pattern)}, header = true)",
                "row_number() OVER ()",
                source.created_time,
            )
        return (
            f"read_parquet({literal(pattern)}, {_NAN})",
            f"(file_index::BIGINT * {_FILE_ROWS} + file_row_number)",
            source.created_time,
        )
    assert isinstance(source, StreamSource)
    if options.offline_dir is None:
        raise ValidationError(
            f"view {view.name!r} reads stream {source.name!r}: the offline options name no "
            "offline_dir (where pushed events are kept)"
        )
    folder = Path(options.offline_dir) / source.name
    if not any(folder.glob("*.parquet")):
        return None, "", STREAM_CREATED
    pattern = str(folder / "*.parquet")
    return (
        f"read_parquet({literal(pattern)}, union_by_name = true, {_NAN})",
        f"(file_index::BIGINT * {_FILE_ROWS} + file_row_number)",
        STREAM_CREATED,
    )


def _empty_stream(view: FeatureView, columns: Sequence[str]) -> SourceRelation:
    source = view.source
    assert isinstance(source, StreamSource)
    declared = {f.name: schema.sql_type(f.dtype) for f in source.fields}
    key_type = schema.sql_type(view.entity.dtype)
    carried = [f"NULL::{declared[c]} AS {quote(c)}" for c in columns]
    sql = (
        f"SELECT NULL::{key_type} AS {KEY}, NULL::DOUBLE AS {TS}, NULL::DOUBLE AS {CREATED}, "
        f"NULL::BIGINT AS {ORDER}, NULL::VARCHAR AS {EVENT_ID}"
        f"{''.join(', ' + c for c in carried)} WHERE false"
    )
    return SourceRelation(view, sql, key_type, {c: declared[c] for c in columns}, True, True)


def _check(
    view: FeatureView,
    types: dict[str, str],
    plain: Sequence[str],
    aggregations: Sequence[Aggregation],
    created: str | None,
) -> None:
    source = view.source
    needed = [view.entity.key, source.event_time, *([created] if created else [])]
    needed += [*plain, *(a.column for a in aggregations if a.column)]
    missing = [c for c in dict.fromkeys(needed) if c not in types]
    if missing:
        raise ValidationError(
            f"{describe(view)} has no column(s) {missing}; it has {sorted(types)}"
        )
    key = view.entity.key
    schema.check_holds(view.entity.dtype, types[key], f"entity key {column_of(view, key)}")
    for name in plain:
        schema.check_holds(view.dtype_of(name), types[name], f"feature {column_of(view, name)}")
    _check_aggregated(view, types, aggregations)


def _check_aggregated(
    view: FeatureView, types: dict[str, str], aggregations: Sequence[Aggregation]
) -> None:
    """Refuse a sum, mean, min or max of a column that holds no numbers."""
    for aggregation in aggregations:
        if aggregation.column is None or aggregation.function == "distinct":
            continue
        if not schema.is_numeric(types[aggregation.column]):
            raise ValidationError(
                f"aggregation {aggregation.feature_name!r} of view {view.name!r}: "
                f"{aggregation.function} needs numbers, but column {aggregation.column!r} "
                f"holds {types[aggregation.column]}"
            )


def column_of(view: FeatureView, column: str) -> str:
    return f"{column!r} of view {view.name!r}"


def _sql_relation(
    con: duckdb.DuckDBPyConnection,
    view: FeatureView,
    source: SqlSource,
    plain: Sequence[str],
    aggregations: Sequence[Aggregation],
    columns: Sequence[str],
    options: OfflineOptions,
) -> SourceRelation:
    """Load the SQL source's rows into a DuckDB table, normalised on the way in."""
    url = source.url or options.database_url
    if url is None:
        raise ValidationError(
            f"view {view.name!r}: its SQL source names no url and the offline options no "
            "metadata database"
        )
    key = view.entity.key
    created = source.created_time
    table = quote(f"sql.{view.name}")
    declared = {name: view.dtype_of(name) for name in plain}
    load_rows(con, view, columns, declared, url, table, _SQL_CHUNK_ROWS)
    types = column_types(con, table, describe(view))
    _check_aggregated(view, types, aggregations)
    carried = "".join(f", {quote(c)}" for c in columns)
    sql = (
        f"SELECT {quote(key)} AS {KEY}, {TS}, {CREATED}, {ORDER}{carried} FROM {table} "
        f"WHERE {quote(key)} IS NOT NULL AND {TS} IS NOT NULL AND NOT isnan({TS})"
    )
    key_type = schema.sql_type(view.entity.dtype)
    return SourceRelation(
        view, sql, key_type, {c: types[c] for c in columns}, created is not None, False
    )


def iter_chunks(
    con: duckdb.DuckDBPyConnection, sql: str, what: str, size: int
) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of ``sql``, ``size`` at a time (plain Python values)."""
    cursor = run(con, sql, what)
    while True:
        rows = cursor.fetchmany(size)
        if not rows:
            return
        yield rows
