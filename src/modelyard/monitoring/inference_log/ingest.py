"""Moving write-ahead logs into the store: the live logs of the processes it follows, and
every log whose process is gone.

``LogIngester`` reads each followed log with a ``wal.LogTail`` (its writer keeps
appending), stores its payloads (``storage.storable`` batches, through an
``InferenceLogRepository``), then moves the log's checkpoint;
a crash between the two replays records the store then ignores (idempotent ids).
A log under the same root that nobody follows and whose lock is free belongs to
a process that died: it is claimed (its lock taken), drained and removed, so the
records of a SIGKILLed worker reach the store exactly once.

Who runs it: a multi-worker server runs one in its supervisor, following its
workers' logs, so no worker spends its GIL on the store; an ``InferenceLogger``
used on its own runs one on a thread for its own log.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from modelyard.errors import RejectedWriteError, StoreError
from modelyard.monitoring.inference_log.repository import InferenceLogRepository, StoredBatch
from modelyard.monitoring.inference_log.storage import storable
from modelyard.monitoring.inference_log.wal import LogTail, Position, WriteAheadLog

ErrorHook = Callable[[str, dict[str, Any]], None]
_MAX_RECORDS = 10_000  # write-ahead log records per read
_MIN_BACKOFF_S = 0.05
_MAX_BACKOFF_S = 5.0


def retry_delay(failures: int) -> float:
    """Seconds before the next pass after ``failures`` failed passes in a row: doubling
    from 50 ms up to 5 s, so a store that is down sees one attempt every 5 s and one
    that returns is written to within 5 s."""
    if failures <= 0:
        return 0.0
    return min(_MIN_BACKOFF_S * 2.0 ** min(failures - 1, 32), _MAX_BACKOFF_S)


class LogIngester:
    """Stores the logs under ``root``: those named by ``follow()`` while their processes
    write them, and any other once its process is gone."""

    def __init__(
        self,
        log: InferenceLogRepository,
        root: Path,
        *,
        follow: Callable[[], Iterable[str]],
        batch_bytes: int = 1024 * 1024,
        interval_s: float = 0.1,
        segment_bytes: int = 16 * 1024 * 1024,
        fsync_interval_s: float | None = None,
        on_error: ErrorHook | None = None,
    ) -> None:
        self._log = log
        self._root = Path(root)
        self._follow = follow
        self._batch_bytes = batch_bytes
        self._interval_s = interval_s
        self._options: dict[str, Any] = {
            "segment_bytes": segment_bytes,
            "fsync_interval_s": fsync_interval_s,
        }
        self._durable = fsync_interval_s is not None
        self._on_error = on_error
        self._tails: dict[str, tuple[LogTail, Position]] = {}
        self._behind = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ingested = 0
        self.undecodable = 0
        self.rejected_rows = 0
        self.store_errors = 0
        self.failures_in_a_row = 0  # passes the store failed since its last success
        self.corrupt_records = 0
        self.last_error: str | None = None

    def ingest_once(self) -> int:
        """One pass: what the followed logs hold now, then every orphaned log; the records
        stored. Store errors propagate (records wait on disk for the next pass)."""
        with self._lock:
            self._behind = False
            followed = set(self._follow())
            moved = sum(self._from_tail(name) for name in sorted(followed))
            for name in list(self._tails):
                if name not in followed:
                    del self._tails[name]  # its process is gone: claimed as an orphan below
            return moved + self._orphans(followed)

    def drain(self, timeout_s: float | None = None) -> int:
        """Pass until a pass stores nothing (or ``timeout_s`` passed); the records stored."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        moved = 0
        while deadline is None or time.monotonic() < deadline:
            count = self.ingest_once()
            moved += count
            if not count:
                break
        return moved

    def start(self) -> LogIngester:
        """Pass every ``interval_s`` (at once again while there is more) on a daemon thread."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="modelyard-log-ingest", daemon=True
            )
            self._thread.start()
        return self

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the thread, then drain what the store takes within ``timeout_s``; what it
        does not take stays on disk for the next ingester."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        try:
            self.drain(timeout_s)
        except StoreError as error:
            self._failed(error)

    def step(self) -> float:
        """One pass as the thread makes it; the seconds to wait before the next.

        0 while more waits; ``interval_s`` once caught up, so that records gather
        (one transaction, fewer checkpoint renames: ~60 us each here); after a
        store error, ``retry_delay`` of the failures in a row. The thread waits
        on a clock; tests call this on simulated time.
        """
        try:
            self.ingest_once()
        except Exception as error:  # the store is down or locked: keep spilling to disk
            self._failed(error)
            self.failures_in_a_row += 1
            return retry_delay(self.failures_in_a_row)
        self.failures_in_a_row = 0
        return 0.0 if self._behind else self._interval_s

    def _run(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(self.step())

    # -- one log ----------------------------------------------------------------------------

    def _from_tail(self, name: str) -> int:
        entry = self._tails.get(name)
        directory = self._root / name
        if entry is None:
            if not directory.is_dir():
                return 0  # not created yet
            tail = LogTail(directory, durable=self._durable)
            entry = self._tails[name] = (tail, tail.checkpoint)
        tail, position = entry
        try:
            count, after = self._store(tail, position)
        except FileNotFoundError:  # claimed and removed by another process's ingester
            del self._tails[name]
            return 0
        self._tails[name] = (tail, after)
        return count

    def _orphans(self, followed: set[str]) -> int:
        moved = 0
        try:
            entries = sorted(os.scandir(self._root), key=lambda e: e.name)
        except FileNotFoundError:
            return 0
        for entry in entries:
            if entry.name in followed or entry.name.startswith(".") or not entry.is_dir():
                continue
            orphan = WriteAheadLog.open_orphan(Path(entry.path), **self._options)
            if orphan is None:
                continue  # a live process owns it
            self.corrupt_records += orphan.corrupt_records  # a torn tail cut when opened
            try:
                position = orphan.checkpoint
                while True:
                    count, after = self._store(orphan, position)
                    moved += count
                    if not count and after == position:
                        break
                    position = after
            finally:
                orphan.close(remove=True)
        return moved

    def _store(self, log: LogTail | WriteAheadLog, position: Position) -> tuple[int, Position]:
        corrupt = log.corrupt_records
        payloads, after = log.read(position, max_records=_MAX_RECORDS, max_bytes=self._batch_bytes)
        if len(payloads) >= _MAX_RECORDS or sum(map(len, payloads)) >= self._batch_bytes:
            self._behind = True  # more is waiting: the next pass starts at once
        self.corrupt_records += log.corrupt_records - corrupt
        batches: list[StoredBatch] = []
        for payload in payloads:
            try:
                stored, bad = storable(payload)
            except (ValueError, KeyError, TypeError, IndexError) as error:
                stored, bad = [], 1
                self._report("inference_log_bad_payload", error)
            batches += stored
            self.undecodable += bad
        self._write(batches)
        records = sum(batch.summary.requests for batch in batches)
        self.ingested += records
        if after != position:
            log.advance(after)
        return records, after

    def _write(self, batches: list[StoredBatch]) -> None:
        try:
            self._log.add_batches(batches)
        except RejectedWriteError:
            # A batch the store refuses would block the log forever: set it aside, keep the rest.
            for batch in batches:
                try:
                    self._log.add_batches([batch])
                except RejectedWriteError as error:
                    self.rejected_rows += batch.summary.requests
                    self._report("inference_log_batch_rejected", error, batch_id=batch.summary.id)

    def _failed(self, error: BaseException) -> None:
        self.store_errors += 1
        self._report("inference_log_store_error", error)

    def _report(self, event: str, error: BaseException, **fields: Any) -> None:
        self.last_error = f"{type(error).__name__}: {error}"
        if self._on_error is not None:
            with contextlib.suppress(Exception):  # a broken hook must not stop the ingester
                self._on_error(event, {"error": self.last_error, **fields})
