"""Windowed aggregations as of each label's time, in DuckDB: the numbers
``windows.aggregate`` gives online for the same events.

For a label at ``t`` an aggregation summarises its entity's events with ``event_time``
in ``(t - window, t]`` (created at or before ``t`` with the leakage guard). A range join
``key = key AND t - window < event_time <= t`` is, to DuckDB, a hash join on the key
with a filter: it pairs each label with *every* event of its entity before
filtering (1M labels x 100 events per entity = 100M pairs). So the events are cut
into buckets of the view's largest window ``W`` (``floor(event_time / W)``), each
label is paired with the two or three buckets its window can touch (from
``floor((t - W) / W)`` to ``floor(t / W)``: floats round monotonically, so an event in
the window is always in one of them) and the hash join is on ``(key, bucket)``:
a label meets only the events of about two windows of its entity, and the exact
window is a filter on those.

Nulls and NaN are missing values, as online: ``sum`` of nothing is 0, ``count`` and
``distinct`` count 0, the others are null. Pushed events replayed twice (the same
``_event_id``, see ``push``) count once, the first arrival, as online.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from modelyard.features.definitions import Aggregation, FeatureView
from modelyard.features.offline import schema
from modelyard.features.offline.engine import quote, run
from modelyard.features.offline.pointintime import LABELS, ROW, T, number
from modelyard.features.offline.sources import CREATED, EVENT_ID, KEY, ORDER, TS, SourceRelation

_BUCKET = '"my.b"'


def empty_value(aggregation: Aggregation) -> str | None:
    """The SQL value of an aggregation over no events (None: null)."""
    return "0" if aggregation.function in ("count", "sum", "distinct") else None


def aggregate_sql(aggregation: Aggregation, column_type: str | None, largest: float) -> str:
    """The SQL aggregate for ``aggregation`` over the joined events ``e`` of a label ``l``
    (already within the largest window ``largest``)."""
    window = aggregation.window_s
    inside = "" if window >= largest else f" FILTER (WHERE e.{TS} > l.{T} - {number(window)})"
    function = aggregation.function
    if function == "count":
        return f"count(*){inside}"
    if function == "time_since_last":
        return f"l.{T} - max(e.{TS}){inside}"
    assert aggregation.column is not None
    assert column_type is not None
    value = _value(quote(aggregation.column), column_type)
    if function == "distinct":
        if schema.kind(column_type) == "float":
            value = f"({value} + 0.0)"  # -0.0 and 0.0 are one value, as in a Python set
        return f"count(DISTINCT {value}){inside}"
    if function == "sum":
        return f"coalesce(sum({value}){inside}, 0)"
    sql_function = {"mean": "avg", "min": "min", "max": "max"}[function]
    return f"{sql_function}({value}){inside}"


def _value(column: str, column_type: str) -> str:
    """A column's value as the aggregates see it: NaN is missing, a bool is 0 or 1."""
    found = schema.kind(column_type)
    if found == "float":
        return f"(CASE WHEN isnan(e.{column}) THEN NULL ELSE e.{column} END)"
    if found == "bool":
        return f"e.{column}::INTEGER"
    return f"e.{column}"


def join_aggregates(
    con: duckdb.DuckDBPyConnection,
    relation: SourceRelation,
    label_key: str,
    aggregations: Sequence[Aggregation],
    *,
    guard: bool,
    table: str,
) -> str:
    """Create the temporary table ``table`` with ``"my.row"`` and one column per
    aggregation (its feature name) for each label row with at least one event in the
    largest window; labels with none are absent (their values are ``empty_value``).
    Returns the table's quoted name."""
    view: FeatureView = relation.view
    largest = max(a.window_s for a in aggregations)
    width = number(largest)
    events = f"({relation.sql})"
    if relation.is_stream:  # a replayed push counts once: its first arrival
        events = (
            f"(SELECT * FROM {events} QUALIFY row_number() OVER "
            f"(PARTITION BY {EVENT_ID} ORDER BY {CREATED}, {ORDER}) = 1)"
        )
    label = quote(label_key)
    labels = (
        f"(SELECT {ROW}, {label} AS {KEY}, {T}, "
        f"unnest(range(floor(({T} - {width}) / {width})::BIGINT, "
        f"floor({T} / {width})::BIGINT + 1)) AS {_BUCKET} "
        f"FROM {LABELS} WHERE {T} IS NOT NULL AND {label} IS NOT NULL)"
    )
    bucketed = f"(SELECT *, floor({TS} / {width})::BIGINT AS {_BUCKET} FROM {events})"
    usable = f"AND e.{CREATED} <= l.{T}" if guard and relation.has_created else ""
    values = ", ".join(
        f"CAST({aggregate_sql(a, relation.types.get(a.column or ''), largest)} "
        f"AS {schema.sql_type(view.dtype_of(a.feature_name))}) AS {quote(a.feature_name)}"
        for a in aggregations
    )
    out = quote(table)
    run(
        con,
        f"CREATE OR REPLACE TEMP TABLE {out} AS SELECT l.{ROW}, {values} "
        f"FROM {labels} l JOIN {bucketed} e ON e.{KEY} = l.{KEY} AND e.{_BUCKET} = l.{_BUCKET} "
        f"AND e.{TS} > l.{T} - {width} AND e.{TS} <= l.{T} {usable} "
        f"GROUP BY l.{ROW}, l.{T}",
        relation.what,
    )
    return out
