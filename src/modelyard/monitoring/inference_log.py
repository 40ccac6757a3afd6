"""The inference log of one serving worker: durable before the answer, stored in the background.

The serving loop calls, for each micro-batch::

    for request in batch:                  # a few us each: no copy, no encoding
        logger.record(request_id=..., deployment=..., inputs=batch_input,
                      input_rows=(start, stop), outputs=batch_outputs,
                      output_rows=(start, stop), ...)
    logger.commit()                        # encode once, one os.write to the log
    ...send the responses...

so an answered request is on local disk (in the kernel's page cache) before its
client sees the answer, and survives a SIGKILL of the worker. A background
thread reads the write-ahead log back and inserts into the metadata store in
batches (idempotently, by record id), then moves the log's checkpoint. The log
on disk is the queue between the two: memory stays bounded however slow the
store is, and the log's size is capped by ``max_wal_bytes`` with an explicit
policy for when it is full (``when_full``):

* ``"reject"`` (default): ``commit()`` raises ``OverloadedError`` and the batch's
  records are discarded; the server answers those requests 503, so no answered
  request goes unlogged.
* ``"drop"``: the batch is answered but not logged; every such record is
  counted in ``dropped_when_full[deployment]``.

Requests left out by a deployment's sampling rate are counted in
``dropped_by_sampling[deployment]``. At start the thread also ingests the logs
of processes that died (any sibling directory whose lock is free), so records
of a killed worker reach the store exactly once.

A thread rather than an asyncio task: the store's driver blocks, and SQLite and
psycopg release the GIL while they work.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy.typing as npt
from sqlalchemy import exc

from modelyard.errors import OverloadedError, StoreError, ValidationError
from modelyard.monitoring.log_policy import WHEN_FULL, LogPolicy, sampled
from modelyard.monitoring.log_record import ERROR, Pending, decode_rows, encode_batch
from modelyard.monitoring.log_store import insert_rows
from modelyard.monitoring.wal import MAX_RECORD_BYTES, Position, WriteAheadLog
from modelyard.store.database import Database

ErrorHook = Callable[[str, dict[str, Any]], None]
_MIN_BACKOFF_S = 0.05
_MAX_BACKOFF_S = 5.0


@dataclass(frozen=True)
class LogStats:
    """Counters of one logger, for ``/metrics``."""

    committed: int
    ingested: int
    backlog_bytes: int
    dropped_by_sampling: dict[str, int]
    dropped_when_full: dict[str, int]
    rejected_rows: int
    corrupt_records: int
    store_errors: int
    last_error: str | None


class InferenceLogger:
    """Records predictions into a write-ahead log under ``root/worker`` and then the store."""

    def __init__(
        self,
        db: Database,
        root: Path,
        *,
        worker: str | None = None,
        policies: Mapping[str, LogPolicy] | None = None,
        default_policy: LogPolicy | None = None,
        when_full: str = "reject",
        max_wal_bytes: int | None = 1024 * 1024 * 1024,
        segment_bytes: int = 16 * 1024 * 1024,
        fsync_interval_s: float | None = None,
        batch_bytes: int = 1024 * 1024,
        interval_s: float = 0.1,
        max_pending: int = 4096,
        on_error: ErrorHook | None = None,
    ) -> None:
        worker = str(os.getpid()) if worker is None else worker
        if not worker or worker.startswith(".") or "/" in worker or "\\" in worker:
            raise ValidationError(f"worker must be a plain directory name, got {worker!r}")
        if when_full not in WHEN_FULL:
            raise ValidationError(f"when_full must be one of {WHEN_FULL}, got {when_full!r}")
        self._db = db
        self._root = Path(root)
        self._options: dict[str, Any] = {
            "segment_bytes": segment_bytes,
            "fsync_interval_s": fsync_interval_s,
        }
        self._wal = WriteAheadLog(self._root / worker, max_bytes=max_wal_bytes, **self._options)
        self._policies = dict(policies or {})
        self._default = default_policy or LogPolicy()
        self._rates = {name: p.sample_rate for name, p in self._policies.items()}
        self._default_rate = self._default.sample_rate
        self._drop_when_full = when_full == "drop"
        self._batch_bytes = batch_bytes
        self._interval_s = interval_s
        self._max_pending = max_pending
        self._on_error = on_error
        # Ids: a random prefix per logger and a counter; unique across workers and restarts.
        self._prefix = secrets.token_hex(8)
        self._count = 0
        self._pending: list[Pending] = []
        self._pending_deployments: list[str] = []
        self._position = self._wal.checkpoint
        self._ingest_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._recovered = False
        self._closed = False
        self.committed = 0
        self.ingested = 0
        self.rejected_rows = 0
        self.undecodable = 0
        self.store_errors = 0
        self.last_error: str | None = None
        self.dropped_by_sampling: Counter[str] = Counter()
        self.dropped_when_full: Counter[str] = Counter()

    # -- the hot path ---------------------------------------------------------------------

    def record(
        self,
        *,
        request_id: str,
        deployment: str,
        model: str,
        version: int,
        ts: float,
        status: int,
        latency_ms: float,
        rows: int,
        arm: str = "primary",
        inputs: Mapping[str, Any] | npt.NDArray[Any] | None = None,
        input_names: Sequence[str] | None = None,
        input_rows: tuple[int, int] | None = None,
        outputs: Mapping[str, Any] | None = None,
        output_rows: tuple[int, int] | None = None,
        error: str | None = None,
    ) -> str | None:
        """Queue one answered request for the next ``commit()``; returns its record id.

        ``inputs`` is ``{name: column}`` or a 2-D array (rows x fields, named
        by ``input_names``); ``outputs`` is ``{name: column}``. Either may be a
        whole micro-batch's, with ``input_rows``/``output_rows`` = (start, stop)
        naming this request's rows: an object shared by several records is
        written once, so passing the batch's merged input and outputs is the
        cheap way. Nothing is copied here: do not change the arrays before
        ``commit()``. Returns None when the deployment's sampling rate leaves
        the request out.
        """
        rate = self._rates.get(deployment, self._default_rate)
        if rate < 1.0 and not sampled(request_id, rate):
            self.dropped_by_sampling[deployment] += 1
            return None
        self._count += 1
        record_id = f"{self._prefix}{self._count:016x}"
        fields = [record_id, request_id, ts, deployment, model, version, arm, status]
        fields += (latency_ms, rows, error)  # in log_record.FIELDS order
        self._pending.append((fields, inputs, input_names, input_rows, outputs, output_rows))
        self._pending_deployments.append(deployment)
        if len(self._pending) >= self._max_pending:
            self.commit()
        return record_id

    def commit(self) -> int:
        """Write every recorded request to the write-ahead log with one ``os.write``.

        Call before sending the batch's responses. Returns the records written.
        Raises ``OverloadedError`` when the log is full and ``when_full`` is
        ``"reject"``, ``StoreError`` when the disk write fails; either way the
        batch's records are discarded and its requests should be answered 503.
        """
        pending, deployments = self._pending, self._pending_deployments
        if not pending:
            return 0
        self._pending, self._pending_deployments = [], []
        if self._closed:
            raise StoreError("the inference log is closed; these records were not written")
        try:
            self._wal.append_many(_payloads(pending))
        except OverloadedError:
            if not self._drop_when_full:
                raise
            self.dropped_when_full.update(deployments)
            return 0
        self.committed += len(pending)
        return len(pending)

    # -- the store side -------------------------------------------------------------------

    def start(self) -> None:
        """Start the background thread that moves the log into the store."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="modelyard-inference-log", daemon=True
            )
            self._thread.start()

    def drain(self, timeout_s: float | None = None) -> int:
        """Move everything committed so far into the store, on this thread; returns records read.

        Also ingests orphaned logs the first time. Store errors propagate.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        moved = 0
        with self._ingest_lock:
            if not self._recovered:
                moved += self._recover()
            target = self._wal.end
            while self._position < target:
                if deadline is not None and time.monotonic() > deadline:
                    break
                count, before = self._ingest_once()
                moved += count
                if not count and self._position == before:
                    break
        return moved

    def recover(self) -> int:
        """Ingest the logs of dead processes under ``root``; returns the records read."""
        with self._ingest_lock:
            return self._recover()

    def close(self, timeout_s: float = 10.0) -> None:
        """Commit, stop the thread, drain what the store takes, and release the log.

        A log the store could not take stays on disk for the next start.
        """
        if self._closed:
            return
        self.commit()
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        try:
            self.drain(timeout_s)
        except (StoreError, exc.SQLAlchemyError) as error:
            self._failed(error)
        self._wal.close(remove=True)

    def set_policy(self, deployment: str, policy: LogPolicy) -> None:
        """Change a deployment's sampling rate (and TTL) from now on."""
        self._policies[deployment] = policy
        self._rates[deployment] = policy.sample_rate

    def policy(self, deployment: str) -> LogPolicy:
        return self._policies.get(deployment, self._default)

    def stats(self) -> LogStats:
        return LogStats(
            committed=self.committed,
            ingested=self.ingested,
            backlog_bytes=self._wal.size_bytes,
            dropped_by_sampling=dict(self.dropped_by_sampling),
            dropped_when_full=dict(self.dropped_when_full),
            rejected_rows=self.rejected_rows,
            corrupt_records=self._wal.corrupt_records + self.undecodable,
            store_errors=self.store_errors,
            last_error=self.last_error,
        )

    def _run(self) -> None:
        backoff = _MIN_BACKOFF_S
        while not self._stop.is_set():
            try:
                with self._ingest_lock:
                    if not self._recovered:
                        self._recover()
                    self._ingest_once()
                self._wal.sync_if_due()
            except Exception as error:  # the store is down or locked: keep spilling to disk
                self._failed(error)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
                continue
            backoff = _MIN_BACKOFF_S
            if self._position >= self._wal.end:  # caught up: let a batch gather
                self._stop.wait(self._interval_s)

    def _ingest_once(self) -> tuple[int, Position]:
        before = self._position
        count, self._position = self._ingest_from(self._wal, before)
        return count, before

    def _recover(self) -> int:
        moved = 0
        own = self._wal.directory.name
        for entry in sorted(os.scandir(self._root), key=lambda e: e.name):
            if entry.name == own or entry.name.startswith(".") or not entry.is_dir():
                continue
            orphan = WriteAheadLog.open_orphan(Path(entry.path), **self._options)
            if orphan is None:
                continue  # a live process owns it
            try:
                position = orphan.checkpoint
                while True:
                    count, after = self._ingest_from(orphan, position)
                    moved += count
                    if not count and after == position:
                        break
                    position = after
            finally:
                orphan.close(remove=True)
        self._recovered = True
        return moved

    def _ingest_from(self, wal: WriteAheadLog, position: Position) -> tuple[int, Position]:
        payloads, after = wal.read(position, max_records=10_000, max_bytes=self._batch_bytes)
        rows: list[tuple[Any, ...]] = []
        if payloads:
            for payload in payloads:
                try:
                    decoded, bad = decode_rows(payload)
                except (ValueError, KeyError, TypeError, IndexError) as error:
                    decoded, bad = [], 1
                    self._report("inference_log_bad_payload", error)
                rows += decoded
                self.undecodable += bad
            self._write(rows)
            self.ingested += len(rows)
        if after != position:
            wal.advance(after)
        return len(rows), after

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        try:
            insert_rows(self._db, rows)
        except (exc.DataError, exc.IntegrityError):
            # A row the store refuses would block the log forever: set it aside, keep the rest.
            for row in rows:
                try:
                    insert_rows(self._db, [row])
                except (exc.DataError, exc.IntegrityError) as error:
                    self.rejected_rows += 1
                    self._report("inference_log_row_rejected", error, record_id=row[0])

    def _failed(self, error: BaseException) -> None:
        self.store_errors += 1
        self._report("inference_log_store_error", error)

    def _report(self, event: str, error: BaseException, **fields: Any) -> None:
        self.last_error = f"{type(error).__name__}: {error}"
        if self._on_error is not None:
            with contextlib.suppress(Exception):  # a broken hook must not stop the writer
                self._on_error(event, {"error": self.last_error, **fields})


def _payloads(pending: list[Pending]) -> list[bytes]:
    """``pending`` as write-ahead log payloads, split where one would pass the size limit."""
    payload = encode_batch(pending)
    if len(payload) <= MAX_RECORD_BYTES:
        return [payload]
    if len(pending) > 1:
        half = len(pending) // 2
        return _payloads(pending[:half]) + _payloads(pending[half:])
    fields = list(pending[0][0])
    fields[ERROR] = f"inputs and outputs not logged: {len(payload)} bytes is over the limit"
    return [encode_batch([(fields, None, None, None, None, None)])]
