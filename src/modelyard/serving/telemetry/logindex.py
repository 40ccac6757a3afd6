"""Finding one request in the JSON log without reading every file: a request-id index.

Rotated segments never change, so each is indexed once (``catch_up``): an SQLite
file beside the log (``<log>.index``, stdlib ``sqlite3``, WAL) maps a 64-bit hash of
each request id to the segment and byte offset of its line. The runner's sweep keeps
it current; a lookup first catches up whatever was rotated since (at most a few
segments) and then scans only the active file, which rotation bounds
(``serving.log_rotate_bytes``). A hash collision costs one extra line read: every
hit is checked against the line itself. Rows of deleted segments go with them
(``forget_missing``).

A lookup costs one index probe, one read per hit and one pass over the active
file, whatever the number of segments.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from modelyard.serving.telemetry.logfiles import Segment, log_files, segments, sweep
from modelyard.serving.telemetry.logsearch import LogQuery, matcher, search

_SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, indexed_bytes INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    key INTEGER NOT NULL, segment INTEGER NOT NULL, offset INTEGER NOT NULL,
    PRIMARY KEY (key, segment, offset)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ix_requests_segment ON requests (segment);
"""
_CHUNK = 8 << 20
_FIELD = b'"request_id"'


def request_key(request_id: str) -> int:
    """The signed 64-bit key an id is indexed under."""
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def index_path(active: Path) -> Path:
    return active.with_name(active.name + ".index")


def _line_request_id(line: bytes) -> str | None:
    if _FIELD not in line:  # most cheaply rules out lifecycle events
        return None
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    found = record.get("request_id") if isinstance(record, dict) else None
    return found if isinstance(found, str) else None


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


class LogIndex:
    """The request-id index of the log at ``active``; ``close`` it."""

    def __init__(self, active: Path) -> None:
        self.active = Path(active)
        self._db = sqlite3.connect(index_path(self.active), timeout=60, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def catch_up(self, found: Sequence[Segment] | None = None) -> int:
        """Index every line of the segments not indexed yet; lines indexed, in all."""
        indexed = 0
        for segment in segments(self.active) if found is None else found:
            indexed += self._index(segment)
        return indexed

    def _index(self, segment: Segment) -> int:
        try:
            size = segment.path.stat().st_size
        except FileNotFoundError:
            return 0
        row = self._db.execute(
            "SELECT id, indexed_bytes FROM segments WHERE name = ?", (segment.name,)
        ).fetchone()
        if row is not None and row[1] >= size:
            return 0
        # One transaction per segment, its progress re-read under the write lock, so two
        # indexers (the sweep, a `modelyard logs`) never index the same bytes twice.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(
                "INSERT OR IGNORE INTO segments (name, indexed_bytes) VALUES (?, 0)",
                (segment.name,),
            )
            segment_id, start = self._db.execute(
                "SELECT id, indexed_bytes FROM segments WHERE name = ?", (segment.name,)
            ).fetchone()
            count = 0
            for rows, end in _index_rows(segment.path, segment_id, start, size):
                self._db.executemany("INSERT OR IGNORE INTO requests VALUES (?, ?, ?)", rows)
                self._db.execute(
                    "UPDATE segments SET indexed_bytes = ? WHERE id = ?", (end, segment_id)
                )
                count += len(rows)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return count

    def forget_missing(self) -> list[str]:
        """Drop the index rows of segments no longer on disk (deleted by retention)."""
        on_disk = {s.name for s in segments(self.active)}
        gone = [
            (sid, name)
            for sid, name in self._db.execute("SELECT id, name FROM segments").fetchall()
            if name not in on_disk
        ]
        for sid, _ in gone:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM requests WHERE segment = ?", (sid,))
            self._db.execute("DELETE FROM segments WHERE id = ?", (sid,))
            self._db.execute("COMMIT")
        return [name for _, name in gone]

    def find(self, request_id: str) -> list[dict[str, Any]]:
        """Every line of ``request_id``: indexed segments first (catching up those rotated
        since the last sweep), then the active file; oldest first."""
        self.catch_up()
        hits = self._db.execute(
            "SELECT s.name, r.offset FROM requests r JOIN segments s ON s.id = r.segment "
            "WHERE r.key = ? ORDER BY s.name, r.offset",
            (request_key(request_id),),
        ).fetchall()
        found = []
        for name, offset in hits:
            record = _read_line(self.active.with_name(name), offset)
            if record is not None and record.get("request_id") == request_id:
                found.append(record)
        found += scan_for(self.active, request_id)
        return found


def _index_rows(
    path: Path, segment_id: int, start: int, size: int
) -> Iterator[tuple[list[tuple[int, int, int]], int]]:
    """``(key, segment, offset)`` of the request lines of ``path`` from ``start`` up to the
    last complete line before ``size``, a chunk at a time, each with where it ends (memory
    stays at one chunk whatever the segment's size)."""
    with path.open("rb") as file:
        file.seek(start)
        offset = start
        while offset < size:
            chunk = file.read(min(_CHUNK, size - offset))
            last = chunk.rfind(b"\n")
            if last < 0:  # a line longer than a chunk, or a torn last line
                chunk += file.readline()
                if not chunk.endswith(b"\n"):
                    return
                last = len(chunk) - 1
            else:
                file.seek(offset + last + 1)
            rows = []
            position = offset
            for line in chunk[: last + 1].split(b"\n")[:-1]:
                request_id = _line_request_id(line)
                if request_id is not None:
                    rows.append((request_key(request_id), segment_id, position))
                position += len(line) + 1
            offset += last + 1
            rows.sort()  # inserted in key order: the B-tree fills from one end, not at random
            yield rows, offset


def _read_line(path: Path, offset: int) -> dict[str, Any] | None:
    try:
        with path.open("rb") as file:
            file.seek(offset)
            return _parse(file.readline())
    except FileNotFoundError:  # deleted by retention since the lookup
        return None


def scan_for(path: Path, request_id: str) -> list[dict[str, Any]]:
    """The lines of ``request_id`` in one file, found by searching its bytes for the id
    as JSON writes it and parsing only the lines that contain it."""
    needle = orjson.dumps(request_id)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return []
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return []
        with mmap.mmap(fd, size, prot=mmap.PROT_READ) as data:
            return [
                record
                for record in _lines_containing(data, needle)
                if request_id in (record.get("request_id"), record.get("id"))
            ]
    finally:
        os.close(fd)


def _lines_containing(data: mmap.mmap, needle: bytes) -> Iterator[dict[str, Any]]:
    at = data.find(needle)
    while at >= 0:
        start = data.rfind(b"\n", 0, at) + 1
        end = data.find(b"\n", at)
        end = len(data) if end < 0 else end
        record = _parse(data[start:end])
        if record is not None:
            yield record
        at = data.find(needle, end)


def search_log(active: Path, query: LogQuery, limit: int | None) -> list[dict[str, Any]]:
    """``logsearch.search`` over every file of the log: a request id through the index,
    anything else over the files that can hold a match (segments rotated before
    ``query.since`` are skipped)."""
    if query.request_id is not None:
        if segments(active):
            index = LogIndex(active)
            try:
                hits = index.find(query.request_id)
            finally:
                index.close()
        else:  # never rotated: the active file is all there is
            hits = scan_for(active, query.request_id)
        found = [r for r in hits if matcher(query)(r)]
        return found if limit is None else found[-limit:]
    files = log_files(active, since=query.since)
    return search(_lines_of(files), query, limit)


def _lines_of(files: Sequence[Path]) -> Iterator[bytes]:
    for path in files:
        try:
            with path.open("rb") as lines:
                yield from lines
        except FileNotFoundError:  # deleted by retention while we read
            continue


def maintain(
    active: Path, now: float, *, ttl_s: float, max_bytes: int, max_age_s: float
) -> dict[str, Any]:
    """The JSON log's share of the retention sweep: rotate the active file if it is due,
    delete expired segments, drop their index rows and index what was rotated since."""
    swept = sweep(active, now, ttl_s=ttl_s, max_bytes=max_bytes, max_age_s=max_age_s)
    index = LogIndex(active)
    try:
        index.forget_missing()
        indexed = index.catch_up()
    finally:
        index.close()
    return {"rotated": swept.rotated, "deleted": list(swept.deleted), "indexed": indexed}
