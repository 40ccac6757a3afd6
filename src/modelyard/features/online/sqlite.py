"""The default online store: one SQLite file under ``<home>/features`` (WAL mode).

Written on the stdlib ``sqlite3`` rather than SQLAlchemy on purpose: this is on the
serving hot path, where a read of one entity should cost tens of microseconds, and
SQLAlchemy's Core adds more than that per statement (compiling, result proxies); the
metadata store keeps SQLAlchemy, this file is not part of it and has no migrations
(its three tables are a cache that materialization and pushes rebuild).

* ``latest``: one row per (view, key); the "older never overwrites" rule is the upsert's
  own ``WHERE excluded.event_time >= event_time``, so concurrent writers (threads or
  processes) cannot undo each other.
* ``events``: keyed by (view, key, event_id), so a replay is ``ON CONFLICT DO NOTHING``;
  an index on (view, key, event_time) serves "this entity's events since t".
* Many keys are one statement: they travel as one JSON array (``json_each``), so the
  statement text, and SQLite's cached plan for it, is the same for any number of keys.

Each thread has its own connection (WAL lets readers run beside the one writer);
writes are ``BEGIN IMMEDIATE`` transactions, waiting up to ``busy_timeout_s`` for the
writer's lock.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from modelyard.errors import StoreError
from modelyard.features.online.encoding import decode_values, encode_values
from modelyard.features.online.store import Event, LatestRow

_SCHEMA = """
CREATE TABLE IF NOT EXISTS latest (
    view TEXT NOT NULL, key TEXT NOT NULL, event_time REAL NOT NULL, payload BLOB NOT NULL,
    PRIMARY KEY (view, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    view TEXT NOT NULL, key TEXT NOT NULL, event_id TEXT NOT NULL,
    event_time REAL NOT NULL, payload BLOB NOT NULL,
    PRIMARY KEY (view, key, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_time ON events (view, key, event_time);
CREATE TABLE IF NOT EXISTS watermarks (view TEXT PRIMARY KEY, at REAL NOT NULL);
"""

_PUT_LATEST = (
    "INSERT INTO latest (view, key, event_time, payload) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (view, key) DO UPDATE SET event_time = excluded.event_time, "
    "payload = excluded.payload WHERE excluded.event_time >= latest.event_time"
)
_GET_LATEST_ONE = "SELECT key, event_time, payload FROM latest WHERE view = ? AND key = ?"
_GET_LATEST_MANY = (
    "SELECT key, event_time, payload FROM latest "
    "WHERE view = ? AND key IN (SELECT value FROM json_each(?))"
)
_ADD_EVENT = (
    "INSERT INTO events (view, key, event_id, event_time, payload) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT DO NOTHING"
)
_GET_EVENTS_ONE = (
    "SELECT key, event_time, event_id, payload FROM events "
    "WHERE view = ? AND key = ? AND event_time > ? ORDER BY event_time, event_id"
)
_GET_EVENTS_MANY = (
    "SELECT key, event_time, event_id, payload FROM events "
    "WHERE view = ? AND key IN (SELECT value FROM json_each(?)) AND event_time > ? "
    "ORDER BY key, event_time, event_id"
)


class SqliteOnlineStore:
    """``OnlineStore`` over one SQLite file; safe to share between threads and processes."""

    def __init__(self, path: Path | str, *, busy_timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self._busy_timeout_ms = int(busy_timeout_s * 1000)
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        with self._translated("open"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._connection()
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    # -- connections -------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise StoreError(f"the online store {self.path} is closed")
        # Autocommit (isolation_level=None): reads need no transaction, writes open
        # BEGIN IMMEDIATE themselves. check_same_thread=False only so close() can close
        # every thread's connection; each is used by its own thread.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        conn.execute("PRAGMA synchronous=NORMAL")
        # Entities arrive in random order, so a push of 1,000 events dirties pages all
        # over the tables: a larger page cache, reads through mmap, and a checkpoint
        # every ~40 MB of WAL rather than every 4 MB (each checkpoint rewrites, and
        # syncs, the pages that changed since the last) make it about 1.4x faster.
        conn.execute("PRAGMA cache_size=-32768")
        conn.execute("PRAGMA mmap_size=268435456")
        conn.execute("PRAGMA wal_autocheckpoint=10000")
        self._local.conn = conn
        with self._lock:
            self._opened.append(conn)
        return conn

    @contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"online store {self.path}: {what} failed: {exc}") from exc

    @contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._translated(what):
            conn = self._connection()
            if conn.in_transaction:  # inside transaction(): its caller commits
                yield conn
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run this thread's reads and writes in one transaction that holds the write
        lock from the start: a push reads what its entities have seen and writes what it
        accepted without another writer in between, and commits once."""
        with self._write("transaction"):
            yield

    # -- latest rows -------------------------------------------------------------------

    def put_latest(self, view: str, rows: Sequence[tuple[str, float, Mapping[str, Any]]]) -> int:
        if not rows:
            return 0
        # the column's REAL affinity stores an int time as a float
        params = [(view, key, t, encode_values(values)) for key, t, values in rows]
        with self._write("put_latest") as conn:
            before = conn.total_changes
            conn.executemany(_PUT_LATEST, params)
            return conn.total_changes - before

    def get_latest(self, view: str, keys: Sequence[str]) -> list[LatestRow | None]:
        if not keys:
            return []
        with self._translated("get_latest"):
            conn = self._connection()
            if len(keys) == 1:
                found = conn.execute(_GET_LATEST_ONE, (view, keys[0])).fetchall()
            else:
                found = conn.execute(_GET_LATEST_MANY, (view, _json_list(keys))).fetchall()
        rows = {key: LatestRow(t, decode_values(payload)) for key, t, payload in found}
        return [rows.get(key) for key in keys]

    # -- events ------------------------------------------------------------------------

    def add_events(self, view: str, events: Sequence[Event]) -> int:
        if not events:
            return 0
        params = [
            (view, e.key, e.event_id, float(e.event_time), encode_values(e.values)) for e in events
        ]
        with self._write("add_events") as conn:
            before = conn.total_changes
            conn.executemany(_ADD_EVENT, params)
            return conn.total_changes - before

    def get_events(self, view: str, keys: Sequence[str], since: float) -> list[list[Event]]:
        if not keys:
            return []
        with self._translated("get_events"):
            conn = self._connection()
            if len(keys) == 1:
                found = conn.execute(_GET_EVENTS_ONE, (view, keys[0], since)).fetchall()
            else:
                found = conn.execute(_GET_EVENTS_MANY, (view, _json_list(keys), since)).fetchall()
        by_key: dict[str, list[Event]] = {}
        for key, t, event_id, payload in found:
            by_key.setdefault(key, []).append(Event(key, t, event_id, decode_values(payload)))
        return [list(by_key.get(key, ())) for key in keys]

    def trim_events(self, view: str, before: float) -> int:
        with self._write("trim_events") as conn:
            cursor = conn.execute(
                "DELETE FROM events WHERE view = ? AND event_time <= ?", (view, before)
            )
            return cursor.rowcount

    # -- watermarks --------------------------------------------------------------------

    def watermark(self, view: str) -> float | None:
        with self._translated("watermark"):
            row = (
                self._connection()
                .execute("SELECT at FROM watermarks WHERE view = ?", (view,))
                .fetchone()
            )
        return None if row is None else float(row[0])

    def set_watermark(self, view: str, at: float) -> None:
        with self._write("set_watermark") as conn:
            conn.execute(
                "INSERT INTO watermarks (view, at) VALUES (?, ?) "
                "ON CONFLICT (view) DO UPDATE SET at = excluded.at",
                (view, float(at)),
            )

    # -- both at once ------------------------------------------------------------------

    def get_latest_and_events(
        self, view: str, keys: Sequence[str], since: float
    ) -> tuple[list[LatestRow | None], list[list[Event]]]:
        """``get_latest`` and ``get_events`` of the same keys, read in one snapshot."""
        with self._translated("get_latest_and_events"):
            conn = self._connection()
            if conn.in_transaction:
                return self.get_latest(view, keys), self.get_events(view, keys, since)
            conn.execute("BEGIN")
            try:
                latest = self.get_latest(view, keys)
                events = self.get_events(view, keys, since)
            finally:
                conn.execute("COMMIT")
        return latest, events

    def close(self) -> None:
        with self._lock:
            self._closed = True
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
        self._local = threading.local()


def _json_list(keys: Sequence[str]) -> str:
    # text, not bytes: SQLite 3.45+ reads a BLOB argument of json_each as JSONB
    return orjson.dumps(list(keys)).decode()
