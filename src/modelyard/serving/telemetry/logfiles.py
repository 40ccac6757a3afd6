"""The JSON log's files: the active file, its rotated segments, rotation and retention.

Every process of a server appends to one active file (``serving.jsonl``, opened
``O_APPEND``). Rotating renames it to an immutable segment named after the moment
it was rotated (``serving.jsonl.20270115T080000123456Z``: names sort by time); each
writer notices at its next flush that the path now names another file and reopens
it (``JsonLog``), so a line is never lost: one written in between lands at the end
of the segment it belongs to. Renames happen under an ``flock`` on ``<log>.lock`` and
only if the file is still the one the caller judged, so two processes never rotate
the same file twice.

A writer rotates when the active file passes ``serving.log_rotate_bytes``; the
runner's retention sweep rotates it when its first line is older than
``serving.log_rotate_s`` (so a quiet server's log expires too), deletes segments
whose last line is older than ``monitoring.log_ttl_days`` and keeps the request-id
index (``logindex``) up to date. The decisions (``rotation_due``, ``expired``) are
pure functions of sizes and times.

The stdlib's ``RotatingFileHandler`` rotates by renaming ``log.1`` to ``log.2`` and so
on in every process, which is unsafe with several writers and renames segments that
an index points into; hence this small module.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

_STAMP = "%Y%m%dT%H%M%S%fZ"
_SEGMENT = re.compile(r"^\d{8}T\d{12}Z(?:-\d+)?$")


@dataclass(frozen=True)
class Segment:
    """A rotated, no longer written file of the log."""

    path: Path
    rotated_at: float  # from its name: every line in it was written before (give or take a flush)

    @property
    def name(self) -> str:
        return self.path.name


def rotation_due(
    size: int, first_ts: float | None, now: float, *, max_bytes: int, max_age_s: float
) -> bool:
    """Whether the active file should be rotated: past ``max_bytes``, or holding a line
    older than ``max_age_s`` (0: never by age). An empty file never rotates."""
    if size <= 0:
        return False
    if size >= max_bytes:
        return True
    return max_age_s > 0 and first_ts is not None and now - first_ts >= max_age_s


def expired(segments: Sequence[tuple[str, float]], now: float, ttl_s: float) -> list[str]:
    """Names of the segments, given as ``(name, last written)``, that a time to live of
    ``ttl_s`` seconds no longer covers (0: keep forever)."""
    if ttl_s <= 0:
        return []
    return [name for name, last_write in segments if now - last_write > ttl_s]


def segment_name(active: Path, at: float) -> str:
    """The name a file rotated at ``at`` gets."""
    return f"{active.name}.{datetime.fromtimestamp(at, UTC).strftime(_STAMP)}"


def segments(active: Path) -> list[Segment]:
    """The rotated segments of the log at ``active``, oldest first."""
    prefix = active.name + "."
    found = []
    try:
        entries = list(os.scandir(active.parent))
    except FileNotFoundError:
        return []
    for entry in entries:
        suffix = entry.name[len(prefix) :]
        if entry.name.startswith(prefix) and _SEGMENT.match(suffix) and entry.is_file():
            at = datetime.strptime(suffix.split("-")[0], _STAMP).replace(tzinfo=UTC)
            found.append(Segment(Path(entry.path), at.timestamp()))
    return sorted(found, key=lambda s: s.name)


def log_files(active: Path, *, since: float | None = None) -> list[Path]:
    """Every file of the log, oldest first, the active one last; with ``since``, without
    the segments rotated before it (they hold only older lines)."""
    files = [s.path for s in segments(active) if since is None or s.rotated_at >= since]
    if active.is_file():
        files.append(active)
    return files


@contextmanager
def rotation_lock(active: Path) -> Iterator[None]:
    """Held while judging and renaming the active file (blocks other rotators only)."""
    fd = os.open(active.with_name(active.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def rotate(active: Path, now: float, *, inode: int | None = None) -> Path | None:
    """Rename the active file to a new segment; with ``inode``, only if the active file is
    still that file (another process may have rotated it already). The caller holds
    ``rotation_lock``. Returns the segment, or None when nothing was renamed."""
    try:
        current = os.stat(active)
    except FileNotFoundError:
        return None
    if inode is not None and current.st_ino != inode:
        return None
    target = active.with_name(segment_name(active, now))
    serial = 0
    while target.exists():  # two rotations within one microsecond
        serial += 1
        target = active.with_name(f"{segment_name(active, now)}-{serial}")
    os.rename(active, target)
    return target


def first_timestamp(path: Path) -> float | None:
    """The ``ts`` of the file's first line, or None (empty, missing, not a log line)."""
    try:
        with path.open("rb") as file:
            line = file.readline(1 << 20)
    except FileNotFoundError:
        return None
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    ts = record.get("ts") if isinstance(record, dict) else None
    return float(ts) if isinstance(ts, int | float) else None


@dataclass(frozen=True)
class SweepResult:
    """What one sweep did: the segment it rotated (if any) and those it deleted."""

    rotated: str | None
    deleted: tuple[str, ...]


def sweep(
    active: Path, now: float, *, ttl_s: float, max_bytes: int, max_age_s: float
) -> SweepResult:
    """Rotate the active file if it is due, then delete the segments past ``ttl_s``."""
    rotated = None
    with rotation_lock(active):
        try:
            stat = os.stat(active)
        except FileNotFoundError:
            stat = None
        if stat is not None and rotation_due(
            stat.st_size,
            first_timestamp(active),
            now,
            max_bytes=max_bytes,
            max_age_s=max_age_s,
        ):
            moved = rotate(active, now, inode=stat.st_ino)
            rotated = moved.name if moved else None
    old = segments(active)
    last_writes = []
    for segment in old:
        try:
            last_writes.append((segment.name, segment.path.stat().st_mtime))
        except FileNotFoundError:
            continue
    deleted = expired(last_writes, now, ttl_s)
    for name in deleted:
        active.with_name(name).unlink(missing_ok=True)
    return SweepResult(rotated, tuple(deleted))
