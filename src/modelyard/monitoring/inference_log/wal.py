"""An append-only write-ahead log on local disk: what makes the inference log durable.

Layout of one log (one directory per serving worker)::

    <root>/<worker>/lock              flock'ed by the process that owns the log
    <root>/<worker>/checkpoint        {"segment": n, "offset": o}: all before is in the store
    <root>/<worker>/00000001.log ...  segments; a record is u32 length, u32 crc32, payload

``append_many`` frames a batch of payloads and hands them to the kernel with
one ``os.write`` on an ``O_APPEND`` descriptor, with no buffering in Python:
once it returns, the bytes are in the page cache and survive a SIGKILL of the
process. They do not survive a power loss or a kernel crash unless they were
fsync'ed: ``fsync_interval_s`` (off by default) bounds that window (0 means
fsync on every append, a few milliseconds each on most disks).

A record is either whole or detected: a torn or corrupt record (short, or a
crc mismatch) ends what is read of its segment, and opening a log truncates
such a tail from its last segment. ``LogTail`` reads a log that another process
(or thread) is writing, without its lock: an incomplete record at the end of the
newest segment is an append in progress, read once it is whole. The reader owns
the checkpoint and deletes spent segments; the writer counts what is left on
disk again when its cap seems reached. The checkpoint is replaced atomically (temp
file + rename); segments wholly before it are deleted. A process that opens a
log takes its directory's lock (``dirlock``), which the kernel releases when
the process dies, however it dies: another process tells an orphaned log from
a live one without trusting pids, which are reused.

Hand-written because no well-kept Python library offers an append-only,
crc-framed, segmented log with checkpoints and crash recovery: the candidates
are key-value stores (lmdb, rocksdb bindings), queues that keep their own
database (persist-queue on SQLite, which would put the store's own lock on the
hot path) or unmaintained. The whole format is the two ``struct`` fields above.
"""

from __future__ import annotations

import contextlib
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import orjson

from modelyard.errors import OverloadedError, StoreError
from modelyard.monitoring.inference_log.dirlock import LOCK, lock_directory, try_lock_directory

HEADER = struct.Struct("<II")  # payload length, crc32 of the payload
MAX_RECORD_BYTES = 64 * 1024 * 1024
SEGMENT_SUFFIX = ".log"
CHECKPOINT = "checkpoint"
_READ_CHUNK = 1024 * 1024


class Position(NamedTuple):
    """A place in a log: a segment number and a byte offset inside it."""

    segment: int
    offset: int


def frame(payloads: Iterable[bytes]) -> bytes:
    """The bytes ``append_many`` writes for ``payloads``."""
    pack, crc = HEADER.pack, zlib.crc32
    return b"".join([pack(len(p), crc(p)) + p for p in payloads])


def parse_frames(data: bytes, limit: int) -> tuple[list[bytes], int, int, bool]:
    """Whole, valid records from the start of ``data``, at most ``limit`` of them.

    Returns (payloads, bytes consumed, size of the incomplete record that
    follows or 0, corrupt): ``corrupt`` when a header is impossible or a crc
    does not match; an incomplete record at the end is for the caller to judge.
    """
    payloads: list[bytes] = []
    at, size, unpack, crc = 0, len(data), HEADER.unpack_from, zlib.crc32
    while len(payloads) < limit:
        if size - at < HEADER.size:
            return payloads, at, (HEADER.size if at < size else 0), False
        length, checksum = unpack(data, at)
        if length > MAX_RECORD_BYTES:
            return payloads, at, 0, True
        stop = at + HEADER.size + length
        if stop > size:
            return payloads, at, stop - at, False
        payload = data[at + HEADER.size : stop]
        if crc(payload) != checksum:
            return payloads, at, 0, True
        payloads.append(payload)
        at = stop
    return payloads, at, 0, False


class WriteAheadLog:
    """One directory's log, owned by this process while it is open.

    ``append_many`` is for one thread (the serving loop); ``read`` and
    ``advance`` may run on another (the store writer). ``max_bytes`` caps the
    log on disk: an append that would pass it raises ``OverloadedError`` and
    writes nothing (the caller's policy decides what that means); segments are
    at most a quarter of it.
    """

    def __init__(
        self,
        directory: Path,
        *,
        segment_bytes: int = 16 * 1024 * 1024,
        max_bytes: int | None = None,
        fsync_interval_s: float | None = None,
        lock_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        _lock_fd: int | None = None,
    ) -> None:
        self.directory = Path(directory)
        # Spent bytes are freed a whole segment at a time, and the cap counts the segment
        # being read: with segments as large as the cap, a log the reader kept up with
        # would fill and refuse every append. A quarter of the cap wastes at most that.
        self.segment_bytes = (
            segment_bytes if max_bytes is None else max(1, min(segment_bytes, max_bytes // 4))
        )
        self.max_bytes = max_bytes
        self.fsync_interval_s = fsync_interval_s
        self._clock = clock
        self._lock_fd: int | None = (
            _lock_fd if _lock_fd is not None else lock_directory(directory, lock_timeout_s)
        )
        self._fd: int | None = None
        # Guards the descriptor and ``size_bytes`` between the appending and the
        # ingesting thread; uncontended, it costs ~0.1 us an append.
        self._lock = threading.Lock()
        self._last_sync = clock()
        self._dirty = False
        self.corrupt_records = 0
        try:
            self.checkpoint = load_checkpoint(self.directory)
            segments = _segments(self.directory)
            for number in segments:
                if number < self.checkpoint.segment:
                    _unlink(self._path(number))
            segments = [n for n in segments if n >= self.checkpoint.segment]
            self.truncated_bytes = self._repair(segments[-1]) if segments else 0
        except BaseException:
            os.close(self._lock_fd)
            raise
        sizes = [_size(self._path(n)) for n in segments]
        self.size_bytes = sum(sizes)
        # Readers see up to ``end``, published only after the write returned.
        self.end = Position(segments[-1], sizes[-1]) if segments else self.checkpoint

    @classmethod
    def open_orphan(cls, directory: Path, **options: float | int | None) -> WriteAheadLog | None:
        """Open another process's log if that process is gone, else None (it is alive)."""
        fd = try_lock_directory(Path(directory), create=False)
        if fd is None:
            return None
        return cls(directory, _lock_fd=fd, **options)  # type: ignore[arg-type]

    # -- writing --------------------------------------------------------------------------

    def append_many(self, payloads: Iterable[bytes]) -> Position:
        """Append records with one ``os.write``; returns the new end of the log."""
        payloads = list(payloads)
        for payload in payloads:
            if len(payload) > MAX_RECORD_BYTES:
                raise StoreError(
                    f"a write-ahead log record has {len(payload)} bytes; the limit is "
                    f"{MAX_RECORD_BYTES}"
                )
        data = frame(payloads)
        if not data:
            return self.end
        if self.max_bytes is not None and self.size_bytes + len(data) > self.max_bytes:
            self._count_disk()  # a reader elsewhere may have freed segments since
        if self.max_bytes is not None and self.size_bytes + len(data) > self.max_bytes:
            raise OverloadedError(
                f"the write-ahead log in {self.directory} holds {self.size_bytes} bytes; "
                f"{len(data)} more would pass its limit of {self.max_bytes} (the store is behind)"
            )
        with self._lock:
            end = self.end
            if self._fd is None or end.offset >= self.segment_bytes:
                end = self._open_segment(end.segment + 1)
            fd = self._fd
            assert fd is not None
            view, written = memoryview(data), 0
            try:
                while written < len(data):  # a regular file takes it all unless the disk is full
                    written += os.write(fd, view[written:])
            except OSError as error:
                # Part of the batch may be on disk: leave it as the segment's torn tail
                # (readers skip it) and put the next append in a new segment.
                os.close(fd)
                self._fd = None
                self.size_bytes += written
                raise StoreError(
                    f"could not write to the write-ahead log in {self.directory}: {error}"
                ) from error
            self.size_bytes += written
            self._dirty = True
            if self.fsync_interval_s is not None:
                self._sync_if_due(fd)
            self.end = Position(end.segment, end.offset + written)
        return self.end

    def backlog_bytes(self) -> int:
        """Bytes after the checkpoint on disk (a ``LogTail`` elsewhere may have moved it)."""
        checkpoint = max(self.checkpoint, load_checkpoint(self.directory))
        try:
            numbers = _segments(self.directory)
        except FileNotFoundError:  # closed, all of it stored, and removed
            return 0
        total = sum(_size(self._path(n)) for n in numbers if n >= checkpoint.segment)
        if checkpoint.segment in numbers:
            total -= checkpoint.offset
        return max(total, 0)

    def _count_disk(self) -> None:
        with self._lock:
            self.size_bytes = sum(_size(self._path(n)) for n in _segments(self.directory))

    def sync_if_due(self) -> None:
        """fsync written records when ``fsync_interval_s`` has passed (for a background thread).

        Appends fsync when they find the interval passed; this covers the last
        appends before a quiet spell, which no later append would sync.
        """
        if self.fsync_interval_s is None or not self._dirty:
            return
        with self._lock:
            if self._fd is not None:
                self._sync_if_due(self._fd)

    def _sync_if_due(self, fd: int) -> None:
        assert self.fsync_interval_s is not None
        now = self._clock()
        if self._dirty and now - self._last_sync >= self.fsync_interval_s:
            os.fsync(fd)
            self._last_sync = now
            self._dirty = False

    def _open_segment(self, number: int) -> Position:
        if self._fd is not None:
            if self._dirty and self.fsync_interval_s is not None:
                os.fsync(self._fd)  # a segment is whole on disk before the next one starts
            os.close(self._fd)
        self._fd = os.open(self._path(number), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if self.fsync_interval_s is not None:
            _fsync_directory(self.directory)
        self.end = Position(number, 0)
        return self.end

    # -- reading and checkpointing -----------------------------------------------------------

    def read(
        self, position: Position, *, max_records: int = 1000, max_bytes: int = 4 * 1024 * 1024
    ) -> tuple[list[bytes], Position]:
        """Records from ``position`` up to the published end; returns them and where they stop."""
        payloads, after, corrupt = read_records(
            self.directory, position, self.end, live=False, max_records=max_records,
            max_bytes=max_bytes,
        )  # fmt: skip
        self.corrupt_records += corrupt
        return payloads, after

    def replay(self) -> Iterator[bytes]:
        """Every record after the checkpoint (does not move the checkpoint)."""
        position = self.checkpoint
        while True:
            payloads, position = self.read(position)
            if not payloads:
                return
            yield from payloads

    def advance(self, position: Position) -> None:
        """Record that everything before ``position`` is in the store; delete spent segments."""
        freed = write_checkpoint(
            self.directory, position, durable=self.fsync_interval_s is not None
        )
        self.checkpoint = position
        with self._lock:
            self.size_bytes -= freed

    @property
    def backlog(self) -> bool:
        """Whether records after the checkpoint may remain."""
        return self.checkpoint < self.end

    # -- lifecycle ------------------------------------------------------------------------

    def close(self, *, remove: bool = False) -> None:
        """Release the log; ``remove`` deletes the directory, only once all of it is ingested."""
        with self._lock:
            if self._fd is not None:
                if self._dirty and self.fsync_interval_s is not None:
                    os.fsync(self._fd)
                os.close(self._fd)
                self._fd = None
        if self._lock_fd is None:
            return
        # Another process may have moved the checkpoint (``LogTail``): ask the disk.
        if remove and max(self.checkpoint, load_checkpoint(self.directory)) >= self.end:
            for number in _segments(self.directory):
                _unlink(self._path(number))
            for name in (CHECKPOINT, f"{CHECKPOINT}.tmp", LOCK):
                _unlink(self.directory / name)
            with contextlib.suppress(OSError):
                self.directory.rmdir()
        os.close(self._lock_fd)  # releases the flock
        self._lock_fd = None

    def __enter__(self) -> WriteAheadLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------

    def _path(self, number: int) -> Path:
        return _segment_path(self.directory, number)

    def _repair(self, number: int) -> int:
        """Truncate a torn or corrupt tail of the last segment; returns the bytes cut."""
        path = self._path(number)
        size = _size(path)
        start = self.checkpoint.offset if number == self.checkpoint.segment else 0
        valid = start
        with open(path, "rb") as file:
            file.seek(start)
            while True:
                data = file.read(_READ_CHUNK)
                if not data:
                    break
                _, used, needed, corrupt = parse_frames(data, len(data))
                if corrupt or (needed and valid + used + needed > size):
                    valid += used
                    break
                if needed and not used:  # one record bigger than the chunk
                    file.seek(valid)
                    data = file.read(needed)
                    _, used, _, corrupt = parse_frames(data, 1)
                    if corrupt or not used:
                        break
                valid += used
                file.seek(valid)
        if valid < size:
            os.truncate(path, valid)
            self.corrupt_records += 1
        return size - valid


class LogTail:
    """Reads a log that a live process (or another thread) is appending to, from its
    checkpoint on disk, without taking its lock; moves the checkpoint as it goes.

    Only one reader per log: ``ingest.LogIngester`` follows the logs of its own
    workers, and claims any other only once its owner is gone.
    """

    def __init__(self, directory: Path, *, durable: bool = False) -> None:
        self.directory = Path(directory)
        self.checkpoint = load_checkpoint(self.directory)
        self._durable = durable
        self.corrupt_records = 0

    def read(
        self, position: Position, *, max_records: int = 1000, max_bytes: int = 4 * 1024 * 1024
    ) -> tuple[list[bytes], Position]:
        """Whole records from ``position`` up to what is on disk now, and where they stop."""
        numbers = _segments(self.directory)
        if not numbers:
            return [], position
        end = Position(numbers[-1], _size(_segment_path(self.directory, numbers[-1])))
        payloads, after, corrupt = read_records(
            self.directory, position, end, live=True, max_records=max_records,
            max_bytes=max_bytes,
        )  # fmt: skip
        self.corrupt_records += corrupt
        return payloads, after

    def advance(self, position: Position) -> None:
        write_checkpoint(self.directory, position, durable=self._durable)
        self.checkpoint = position


def read_records(
    directory: Path,
    position: Position,
    end: Position,
    *,
    live: bool,
    max_records: int,
    max_bytes: int,
) -> tuple[list[bytes], Position, int]:
    """Records of the log in ``directory`` from ``position`` to ``end``: the payloads, where
    they stop, and how many corrupt spans were skipped. With ``live``, an incomplete
    record at ``end`` is an append in progress: reading stops before it."""
    segment, offset = position
    out: list[bytes] = []
    budget = max_bytes
    corrupt = 0
    while segment <= end.segment:
        path = _segment_path(directory, segment)
        limit = end.offset if segment == end.segment else _size(path)
        if offset >= limit:  # step over a finished segment, so advance() can delete it
            if segment == end.segment:
                break
            segment, offset = segment + 1, 0
            continue
        if len(out) >= max_records or budget <= 0:
            break
        payloads, used, torn, bad = _read_span(path, offset, limit, max_records - len(out), budget)
        out += payloads
        budget -= used
        offset += used
        if torn and live and segment == end.segment:
            break  # the writer is still appending it
        if bad or (torn and not payloads):
            # skip what cannot be read; appends resume at a record boundary
            corrupt += 1
            offset = limit
    return out, Position(segment, offset), corrupt


def _read_span(
    path: Path, offset: int, limit: int, records: int, budget: int
) -> tuple[list[bytes], int, bool, bool]:
    """(payloads, bytes used, an incomplete record follows, a corrupt record follows)."""
    try:
        with open(path, "rb") as file:
            file.seek(offset)
            # At most the budget: what one pass holds in memory (and stores in one
            # transaction) is bounded by it, however large the backlog on disk.
            data = file.read(min(limit - offset, budget))
            payloads, used, needed, corrupt = parse_frames(data, records)
            if not payloads and needed and offset + needed <= limit:
                file.seek(offset)  # one record bigger than the chunk
                data = file.read(needed)
                payloads, used, needed, corrupt = parse_frames(data, 1)
    except FileNotFoundError:
        return [], 0, False, True
    return payloads, used, bool(needed) and offset + used + needed > limit, corrupt


def load_checkpoint(directory: Path) -> Position:
    """Where the store's copy of the log ends; an unreadable checkpoint means "from the
    start" (replays are idempotent)."""
    try:
        saved = orjson.loads((directory / CHECKPOINT).read_bytes())
        return Position(int(saved["segment"]), int(saved["offset"]))
    except (OSError, ValueError, KeyError, TypeError):
        return Position(0, 0)


def write_checkpoint(directory: Path, position: Position, *, durable: bool) -> int:
    """Replace the checkpoint atomically and delete the segments before it; bytes freed."""
    temporary = directory / f"{CHECKPOINT}.tmp"
    with open(temporary, "wb") as file:
        file.write(orjson.dumps({"segment": position.segment, "offset": position.offset}))
        if durable:
            file.flush()
            os.fsync(file.fileno())
    os.replace(temporary, directory / CHECKPOINT)
    return sum(
        _unlink(_segment_path(directory, n)) for n in _segments(directory) if n < position.segment
    )


def _segment_path(directory: Path, number: int) -> Path:
    return directory / f"{number:08d}{SEGMENT_SUFFIX}"


def _segments(directory: Path) -> list[int]:
    numbers = []
    for entry in os.scandir(directory):
        stem, _, suffix = entry.name.partition(".")
        if f".{suffix}" == SEGMENT_SUFFIX and stem.isdigit():
            numbers.append(int(stem))
    return sorted(numbers)


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _unlink(path: Path) -> int:
    size = _size(path)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return 0
    return size


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
