"""Materialization: what serving needs from the offline sources, into the online store.

For each online view, from its source (read by DuckDB as the training sets read it,
``offline/sources.py``):

* **plain features**: per entity, its latest row with ``event_time`` in range (the
  greatest ``(event_time, created_time, read order)``) goes to ``put_latest``; the
  store never lets an older event time replace a newer one, so re-runs and
  overlapping ranges are harmless;
* **aggregations**: the events with ``event_time`` in ``(end - W, end]`` (``W`` the
  view's largest window: older ones can never count again) go to ``add_events`` with a
  deterministic id (a pushed event's ``_event_id``; for file and SQL rows a hash of the
  row's key, times and aggregated columns, with ``:n`` for the n-th identical row, so
  identical rows count as often as the offline join counts them), and events older
  than the newest one's window are trimmed.

``materialize(start, end)`` reads ``event_time`` in ``[start, end]`` and leaves the
watermark alone. ``materialize_incremental(end)`` reads what arrived since the
watermark, defined precisely as: the **marker** of a row is its created time (the
event time where the source has no created column); the watermark ``w`` says every
row with ``marker <= w`` has been applied (or is too old to matter); a run reads the
rows with ``marker > w`` (all rows the first time) and ``event_time <= end``, and moves
``w`` to the greatest marker it read, but never past a row it left for later
(``event_time > end``: its marker minus one ulp). So ``w`` never moves past data
actually read, and an ``end`` in the future skips nothing (feast#4222, where the
watermark became the end date). The watermark is kept under ``watermark_key``, the
view's name with its definition's digest: re-applying an unchanged view keeps it
(feast#2905, where a re-apply lost it and the next run skipped data), and a changed
definition starts from scratch rather than leaving old rows without its new
features. It is written only after the rows are, so a crash re-reads rather than
skips. Without a created column a row that lands late with an old event time is not
seen incrementally: give such sources a created column, or re-run ``materialize``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import numpy as np

from modelyard.config.settings import Settings
from modelyard.errors import ValidationError
from modelyard.features.definitions import FeatureView
from modelyard.features.offline import schema
from modelyard.features.offline.engine import OfflineOptions, options_of, quote, run, session
from modelyard.features.offline.pointintime import number
from modelyard.features.offline.sources import (
    CREATED,
    EVENT_ID,
    KEY,
    ORDER,
    TS,
    SourceRelation,
    iter_chunks,
    open_source,
)
from modelyard.features.online.store import Event, OnlineStore
from modelyard.features.windows import horizon

Progress = Callable[[str, int, int], None]
"""Called as ``progress(view, rows_done, rows_total)``: once with 0 done when a view's
rows are counted, then after each chunk written."""

_CHUNK_ROWS = 10_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Materialized:
    """What one view's materialization did."""

    view: str
    latest_rows: int  # rows offered to put_latest
    latest_written: int  # of which the store took (not older than what it had)
    events: int  # events offered to add_events
    events_added: int  # of which were new
    events_trimmed: int
    watermark: float | None  # after the run (incremental), else as it was


def watermark_key(view: FeatureView) -> str:
    """Where the online store keeps ``view``'s watermark: its name and definition digest."""
    return f"{view.name}@{view.digest[:16]}"


def materialize(
    views: Mapping[str, FeatureView] | Iterable[FeatureView],
    online: OnlineStore,
    start: float | datetime | None,
    end: float | datetime,
    *,
    options: OfflineOptions | Settings | None = None,
    progress: Progress | None = None,
) -> list[Materialized]:
    """Write the online views among ``views`` from rows with ``event_time`` in
    ``[start, end]`` (``start`` None: from the beginning). The watermark is not moved."""
    low = None if start is None else _seconds(start, "start")
    high = _seconds(end, "end")
    if low is not None and low > high:
        raise ValidationError(f"materialize: start ({start}) is after end ({end})")
    return _run(views, online, low, high, options_of(options), progress, incremental=False)


def materialize_incremental(
    views: Mapping[str, FeatureView] | Iterable[FeatureView],
    online: OnlineStore,
    end: float | datetime,
    *,
    options: OfflineOptions | Settings | None = None,
    progress: Progress | None = None,
) -> list[Materialized]:
    """Write the online views among ``views`` from the rows that arrived since their
    watermark with ``event_time <= end``, then move the watermark (module docstring)."""
    return _run(
        views, online, None, _seconds(end, "end"), options_of(options), progress, incremental=True
    )


def _run(
    views: Mapping[str, FeatureView] | Iterable[FeatureView],
    online: OnlineStore,
    start: float | None,
    end: float,
    options: OfflineOptions,
    progress: Progress | None,
    *,
    incremental: bool,
) -> list[Materialized]:
    chosen = [v for v in (views.values() if isinstance(views, Mapping) else views) if v.online]
    done: list[Materialized] = []
    with session(options) as con:
        for view in chosen:
            plain = [f.name for f in view.features]
            relation = open_source(con, view, plain, view.aggregations, options)
            if schema.key_kind(relation.key_type) is None:
                raise ValidationError(
                    f"view {view.name!r}: the entity key {view.entity.key!r} holds "
                    f"{relation.key_type}; the online store keys entities by integers or text"
                )
            since = online.watermark(watermark_key(view)) if incremental else None
            job = _ViewJob(con, relation, online, start, end, since, progress)
            done.append(job.run(incremental))
    return done


class _ViewJob:
    """One view's materialization on an open DuckDB session."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        relation: SourceRelation,
        online: OnlineStore,
        start: float | None,
        end: float,
        since: float | None,
        progress: Progress | None,
    ) -> None:
        self.con = con
        self.relation = relation
        self.view = relation.view
        self.online = online
        self.end = end
        self.since = since
        self.progress = progress
        self.marker = CREATED if relation.has_created else TS
        conditions = [f"{TS} <= {number(end)}"]
        if start is not None:
            conditions.append(f"{TS} >= {number(start)}")
        if since is not None:
            conditions.append(f"{self.marker} > {number(since)}")
        self.where = " AND ".join(conditions)

    def run(self, incremental: bool) -> Materialized:
        view = self.view
        # Read before the rows are: files only ever get added, so everything these
        # figures saw is among the rows read below (the watermark cannot pass a row
        # that landed in between).
        newest, read, pending = self._figures()
        window = horizon(view.aggregations)
        latest = self._latest_rows() if view.features else None
        events = self._events(newest - window) if view.aggregations and newest is not None else None
        n_latest = self._count(latest)
        n_events = self._count(events)
        total = n_latest + n_events
        if self.progress is not None:
            self.progress(view.name, 0, total)
        written = self._put_latest(latest, total) if latest and n_latest else 0
        added = self._add_events(events, n_latest, total) if events and n_events else 0
        trimmed = 0
        if view.aggregations and newest is not None:
            # Relative to the newest event, never to ``end`` alone: an ``end`` in the
            # future would trim events still served.
            trimmed = self.online.trim_events(view.name, newest - window)
        if incremental:
            watermark = next_watermark(self.since, read, pending)
            if watermark is not None and watermark != self.since:
                self.online.set_watermark(watermark_key(view), watermark)
        else:
            watermark = self.online.watermark(watermark_key(view))
        return Materialized(view.name, n_latest, written, n_events, added, trimmed, watermark)

    def _figures(self) -> tuple[float | None, float | None, float | None]:
        """The newest event time up to ``end``; the greatest marker of the rows to read and
        the least of those left for later (``event_time > end``), both since the watermark."""
        end = number(self.end)
        since = "" if self.since is None else f" AND {self.marker} > {number(self.since)}"
        row = run(
            self.con,
            f"SELECT max({TS}) FILTER (WHERE {TS} <= {end}), "
            f"max({self.marker}) FILTER (WHERE {TS} <= {end}{since}), "
            f"min({self.marker}) FILTER (WHERE {TS} > {end}{since}) "
            f"FROM ({self.relation.sql})",
            self.relation.what,
        ).fetchone()
        if row is None:
            return None, None, None
        return _float(row[0]), _float(row[1]), _float(row[2])

    def _latest_rows(self) -> str:
        view = self.view
        values = ", ".join(
            f"CAST({quote(f.name)} AS {schema.sql_type(f.dtype)}) AS {quote(f.name)}"
            for f in view.features
        )
        table = quote(f"latest.{view.name}")
        run(
            self.con,
            f"CREATE OR REPLACE TEMP TABLE {table} AS "
            f"SELECT CAST({KEY} AS VARCHAR) AS k, {TS} AS t, {values} "
            f"FROM ({self.relation.sql}) WHERE {self.where} "
            f"QUALIFY row_number() OVER (PARTITION BY {KEY} "
            f"ORDER BY {TS} DESC, {CREATED} DESC, {ORDER} DESC) = 1",
            self.relation.what,
        )
        return table

    def _events(self, after: float) -> str:
        view = self.view
        relation = self.relation
        columns = list(dict.fromkeys(a.column for a in view.aggregations if a.column))
        carried = "".join(f", {quote(c)}" for c in columns)
        if relation.is_stream:
            event_id = EVENT_ID
        else:
            content = ", ".join(
                [f"k := {KEY}", f"t := {TS}", f"c := {CREATED}"]
                + [f"{quote('v.' + c)} := {quote(c)}" for c in columns]
            )
            digest = f"md5(CAST(to_json(struct_pack({content})) AS VARCHAR))"
            event_id = (
                f"{digest} || ':' || "
                f"row_number() OVER (PARTITION BY {digest} ORDER BY {ORDER})::VARCHAR"
            )
        table = quote(f"events.{view.name}")
        run(
            self.con,
            f"CREATE OR REPLACE TEMP TABLE {table} AS "
            f"SELECT CAST({KEY} AS VARCHAR) AS k, {TS} AS t, {event_id} AS id{carried} "
            f"FROM ({relation.sql}) WHERE {self.where} AND {TS} > {number(after)}",
            relation.what,
        )
        return table

    def _count(self, table: str | None) -> int:
        if table is None:
            return 0
        row = run(self.con, f"SELECT count(*) FROM {table}", self.relation.what).fetchone()
        return int(row[0]) if row else 0

    def _put_latest(self, table: str, total: int) -> int:
        view = self.view
        names = [f.name for f in view.features]
        written = done = 0
        for rows in iter_chunks(
            self.con, f"SELECT * FROM {table}", self.relation.what, _CHUNK_ROWS
        ):
            batch = [
                (row[0], float(row[1]), dict(zip(names, row[2:], strict=True))) for row in rows
            ]
            written += self.online.put_latest(view.name, batch)
            done += len(rows)
            if self.progress is not None:
                self.progress(view.name, done, total)
        return written

    def _add_events(self, table: str, done: int, total: int) -> int:
        view = self.view
        columns = list(dict.fromkeys(a.column for a in view.aggregations if a.column))
        added = 0
        for rows in iter_chunks(
            self.con, f"SELECT * FROM {table}", self.relation.what, _CHUNK_ROWS
        ):
            batch = [
                Event(row[0], float(row[1]), row[2], dict(zip(columns, row[3:], strict=True)))
                for row in rows
            ]
            added += self.online.add_events(view.name, batch)
            done += len(rows)
            if self.progress is not None:
                self.progress(view.name, done, total)
        return added


def next_watermark(since: float | None, read: float | None, pending: float | None) -> float | None:
    """The watermark after a run that read rows with markers up to ``read`` (None: none)
    and left rows for later from marker ``pending`` on (None: none): the greatest
    marker read, held just below the first row left, never moved back."""
    if read is None:
        return since
    moved = float(read)
    if pending is not None:
        moved = min(moved, float(np.nextafter(float(pending), -np.inf)))
    return moved if since is None else max(since, moved)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _seconds(value: Any, what: str) -> float:
    """A time given by a caller as epoch seconds (a datetime: naive ones are UTC)."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return (aware - _EPOCH).total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
        return float(value)
    raise ValidationError(f"materialize: {what} must be a datetime or epoch seconds, got {value!r}")
