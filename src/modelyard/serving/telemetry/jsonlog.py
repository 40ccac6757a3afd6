"""Structured JSON-lines logs: one object per request or lifecycle event.

Every line has ``ts`` (epoch seconds), ``time`` (ISO 8601, UTC), ``level``,
``event`` and ``worker``; request lines add ``request_id``, ``method``,
``path``, ``status``, ``model``, ``version``, ``rows``, ``duration_ms`` and, for
errors, ``code`` and ``error``. ``modelyard logs`` searches them.

Hand-written instead of the ``logging`` module: a ``LogRecord`` plus formatter
costs ~10-20 us, a noticeable share of a ~60 us request. Here a line is one
``orjson.dumps``; lines are buffered and written with one ``write()`` per flush
(at most ``FLUSH_LINES`` lines or every flush tick), on a file opened
``O_APPEND`` so several worker processes can share it without tearing lines.

After each flush a writer checks (one ``fstat`` and one ``stat``) whether its file
passed ``rotate_bytes`` (then it rotates it, ``logfiles.rotate``) or was rotated by
another process, and reopens the path: every process moves to the new file within
one flush of a rotation, and lines written before that end the old segment.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from modelyard.serving.telemetry.logfiles import rotate, rotation_lock

FLUSH_LINES = 512
LEVELS = ("debug", "info", "warning", "error")


class JsonLog:
    """An append-only JSON-lines sink; ``path=None`` or ``"-"`` writes to stderr."""

    def __init__(
        self, path: Path | str | None, *, worker: str, rotate_bytes: int | None = None
    ) -> None:
        self.path = None if path is None or path == "-" else Path(path)
        self.worker = worker
        self.rotate_bytes = rotate_bytes
        self._buffer: list[bytes] = []
        # Flushes may come from two threads (the log ingester emits too): one writes at a
        # time, so a reopen never closes the descriptor another flush is writing to.
        self._write_lock = threading.Lock()
        self._second = -1
        self._stamp = ""
        if self.path is None:
            self._fd = sys.stderr.fileno()
            self._owns_fd = False
        else:
            self._fd = self._open(self.path)
            self._owns_fd = True

    @staticmethod
    def _open(path: Path) -> int:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _time(self, ts: float) -> str:
        second = int(ts)
        if second != self._second:
            self._second = second
            self._stamp = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._stamp}.{int((ts - second) * 1000):03d}Z"

    def emit(self, level: str, event: str, fields: dict[str, Any], ts: float | None = None) -> None:
        """Buffer one line; ``fields`` must be JSON-serialisable."""
        ts = time.time() if ts is None else ts
        record = {
            "ts": ts,
            "time": self._time(ts),
            "level": level,
            "event": event,
            "worker": self.worker,
            **fields,
        }
        self._buffer.append(orjson.dumps(record, default=str, option=orjson.OPT_APPEND_NEWLINE))
        if len(self._buffer) >= FLUSH_LINES:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        # Swapped, not cleared: a background thread's emit (the log ingester) may append
        # between the join and a clear.
        lines, self._buffer = self._buffer, []
        data = b"".join(lines)
        with self._write_lock:
            self._write(data)

    def _write(self, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as error:  # a full disk must not take the server down
            sys.stderr.write(f"modelyard: cannot write the JSON log: {error}\n")
        if self._owns_fd:
            self._follow_rotation()

    def _follow_rotation(self) -> None:
        """Rotate the file if it grew past ``rotate_bytes``; reopen the path if the file
        it names is no longer ours (rotated here or by another process)."""
        assert self.path is not None
        try:
            mine = os.fstat(self._fd)
            if self.rotate_bytes is not None and mine.st_size >= self.rotate_bytes:
                with rotation_lock(self.path):
                    rotate(self.path, time.time(), inode=mine.st_ino)
            try:
                moved = os.stat(self.path).st_ino != mine.st_ino
            except FileNotFoundError:
                moved = True
            if moved:
                fd = self._open(self.path)
                os.close(self._fd)
                self._fd = fd
        except OSError as error:  # keep writing to the old file rather than stop
            sys.stderr.write(f"modelyard: cannot rotate the JSON log: {error}\n")

    def close(self) -> None:
        self.flush()
        with self._write_lock:
            self._close()

    def _close(self) -> None:
        if self._owns_fd:
            os.close(self._fd)
            self._owns_fd = False
