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
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

FLUSH_LINES = 512
LEVELS = ("debug", "info", "warning", "error")


class JsonLog:
    """An append-only JSON-lines sink; ``path=None`` or ``"-"`` writes to stderr."""

    def __init__(self, path: Path | str | None, *, worker: str) -> None:
        self.path = None if path is None or path == "-" else Path(path)
        self.worker = worker
        self._buffer: list[bytes] = []
        self._second = -1
        self._stamp = ""
        if self.path is None:
            self._fd = sys.stderr.fileno()
            self._owns_fd = False
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._owns_fd = True

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
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as error:  # a full disk must not take the server down
            sys.stderr.write(f"modelyard: cannot write the JSON log: {error}\n")

    def close(self) -> None:
        self.flush()
        if self._owns_fd:
            os.close(self._fd)
            self._owns_fd = False
