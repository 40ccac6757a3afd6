"""Plain features as of each label's time: the point-in-time join, in DuckDB.

The rule (``definitions``): a label at ``t`` gets the row of its entity with the
greatest ``(event_time, created_time, read order)`` among those with ``event_time <= t``,
``event_time > t - ttl`` and, with the leakage guard, ``created_time <= t``.

Why not one ``ASOF JOIN`` carrying the features: an ASOF join takes *a* row at the
greatest ``event_time <= t``: which of several rows tied on that time is unspecified,
and it has no room for a second condition such as ``created_time <= t``. Measured
alternatives on 1M labels x 10M rows (2 cores): an ASOF join on a composite
``(event_time, created_time, order)`` key (a STRUCT or a 128-bit integer) costs 1.5-2x
the plain ASOF join, a running-maximum window over the source 3-5x. What is done
instead is exact and costs about what the plain ASOF join carrying the features does
(``benchmarks/features/RESULTS.md``: 0.98x a hand-written one at 1M x 3 x 10M):

1. ``ASOF JOIN`` the labels with the source's ``(key, event_time)`` only: for each label
   the greatest event time at or before ``t`` (``m``), dropped when outside the TTL.
   Carrying no features makes the sort it does cheaper than the plain join's.
2. Hash-join the source on ``(key, event_time = m)``: every row at that time (ties
   included), keeping those created at or before ``t``; the latest created, then the
   one read last, wins. This brings the features.
3. Only with the guard, and only for the labels whose every row at ``m`` was written
   after ``t`` (rare: a label between an event and its write): search the older rows
   of the entity within the TTL directly (a hash join on the key: it costs the
   entity's rows per such label).
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from modelyard.features.offline.engine import quote, run
from modelyard.features.offline.sources import CREATED, KEY, ORDER, TS, SourceRelation

LABELS = "my_labels"
ROW = '"my.row"'
T = '"my.t"'
_MATCH_TS = '"my.m"'


def number(value: float) -> str:
    """A float as an exact DuckDB DOUBLE (a bare ``0.1`` would be a DECIMAL)."""
    return f"CAST('{float(value)!r}' AS DOUBLE)"


def join_plain(
    con: duckdb.DuckDBPyConnection,
    relation: SourceRelation,
    label_key: str,
    features: Sequence[str],
    *,
    ttl: float | None,
    guard: bool,
    table: str,
) -> str:
    """Create the temporary table ``table`` with ``"my.row"`` and ``features`` for each label
    row of ``my_labels`` that has a row in range (see the module docstring); labels
    with none are absent. Returns the table's quoted name."""
    source = f"({relation.sql})"
    what = relation.what
    matches = quote(f"{table}.match")
    out = quote(table)
    label = f"l.{quote(label_key)}"
    within = "" if ttl is None else f"WHERE r.{TS} > l.{T} - {number(ttl)}"
    run(
        con,
        f"CREATE OR REPLACE TEMP TABLE {matches} AS "
        f"SELECT l.{ROW}, {label} AS {KEY}, l.{T}, r.{TS} AS {_MATCH_TS} "
        f"FROM {LABELS} l ASOF JOIN (SELECT {KEY}, {TS} FROM {source}) r "
        f"ON {label} = r.{KEY} AND l.{T} >= r.{TS} {within}",
        what,
    )
    guarded = guard and relation.has_created
    usable = f"AND s.{CREATED} <= m.{T}" if guarded else ""
    chosen = ", ".join(f"s.{quote(f)}" for f in features)
    run(
        con,
        f"CREATE OR REPLACE TEMP TABLE {out} AS "
        f"SELECT m.{ROW}, s.{CREATED}, s.{ORDER}, {chosen} FROM {matches} m JOIN {source} s "
        f"ON s.{KEY} = m.{KEY} AND s.{TS} = m.{_MATCH_TS} {usable}",
        what,
    )
    # Rows tied on (key, event time) are rare: rank them only when there are some (a
    # window over every label costs half as much again as the join).
    counts = run(con, f"SELECT count(*), count(DISTINCT {ROW}) FROM {out}", what).fetchone()
    if counts is not None and counts[0] != counts[1]:
        run(
            con,
            f"CREATE OR REPLACE TEMP TABLE {out} AS SELECT * FROM {out} "
            f"QUALIFY row_number() OVER (PARTITION BY {ROW} "
            f"ORDER BY {CREATED} DESC, {ORDER} DESC) = 1",
            what,
        )
    if guarded:
        _older_rows(con, relation, source, matches, out, chosen, ttl)
    run(con, f"DROP TABLE {matches}", what)
    return out


def _older_rows(
    con: duckdb.DuckDBPyConnection,
    relation: SourceRelation,
    source: str,
    matches: str,
    out: str,
    chosen: str,
    ttl: float | None,
) -> None:
    """Step 3: labels whose rows at ``m`` were all written after them."""
    what = relation.what
    late = f"(SELECT m.* FROM {matches} m ANTI JOIN {out} o ON o.{ROW} = m.{ROW})"
    count = run(con, f"SELECT count(*) FROM {late}", what).fetchone()
    if not count or not count[0]:
        return
    within = "" if ttl is None else f"AND s.{TS} > m.{T} - {number(ttl)}"
    run(
        con,
        f"INSERT INTO {out} SELECT m.{ROW}, s.{CREATED}, s.{ORDER}, {chosen} "
        f"FROM {late} m JOIN {source} s "
        f"ON s.{KEY} = m.{KEY} AND s.{TS} < m.{_MATCH_TS} AND s.{CREATED} <= m.{T} {within} "
        f"QUALIFY row_number() OVER (PARTITION BY m.{ROW} "
        f"ORDER BY s.{TS} DESC, s.{CREATED} DESC, s.{ORDER} DESC) = 1",
        what,
    )
