"""The inference log of one serving worker: durable before the answer, stored in the background.

The serving loop calls, for each micro-batch::

    logger.record_batch(model=..., version=..., request_ids=[...], ts=[...],
                        deployments=[...], arms=[...], spans=[(start, stop), ...],
                        latency_ms=[...], inputs=batch_input, outputs=batch_outputs)
    logger.commit()                        # encode once, one os.write to the log
    ...send the responses...

(``record`` takes one request at a time, for failures and other callers.)

so an answered request is on local disk (in the kernel's page cache) before its
client sees the answer, and survives a SIGKILL of the worker. A
``ingest.LogIngester`` reads the write-ahead log back and stores its
payloads in the metadata store, one row per micro-batch: on a thread of this
process (``ingest=True``), or in another process that follows this log (a
multi-worker server's supervisor). The log on disk is the queue between the
two: memory stays bounded however slow the store is, and the log's size is
capped by ``max_wal_bytes`` with an explicit policy for when it is full
(``when_full``):

* ``"reject"`` (default): ``commit()`` raises ``OverloadedError`` and the batch's
  records are discarded; the server answers those requests 503, so no answered
  request goes unlogged.
* ``"drop"``: the batch is answered but not logged; every such record is
  counted in ``dropped_when_full[deployment]``.

Requests left out by a deployment's sampling rate are counted in
``dropped_by_sampling[deployment]``.
"""

from __future__ import annotations

import os
import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy.typing as npt

from modelyard.errors import OverloadedError, StoreError, ValidationError
from modelyard.monitoring.inference_log.ingest import ErrorHook, LogIngester
from modelyard.monitoring.inference_log.policy import WHEN_FULL, LogPolicy, sampled
from modelyard.monitoring.inference_log.record import Group, encode
from modelyard.monitoring.inference_log.repository import InferenceLogRepository
from modelyard.monitoring.inference_log.wal import MAX_RECORD_BYTES, WriteAheadLog


@dataclass(frozen=True)
class LogStats:
    """Counters of one logger."""

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
    """Records predictions into a write-ahead log under ``root/worker`` and then into ``log``
    (unused without ``ingest``: another process stores the write-ahead log)."""

    def __init__(
        self,
        log: InferenceLogRepository,
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
        ingest: bool = True,
    ) -> None:
        worker = str(os.getpid()) if worker is None else worker
        if not worker or worker.startswith(".") or "/" in worker or "\\" in worker:
            raise ValidationError(f"worker must be a plain directory name, got {worker!r}")
        if when_full not in WHEN_FULL:
            raise ValidationError(f"when_full must be one of {WHEN_FULL}, got {when_full!r}")
        self._wal = WriteAheadLog(
            Path(root) / worker,
            max_bytes=max_wal_bytes,
            segment_bytes=segment_bytes,
            fsync_interval_s=fsync_interval_s,
        )
        self._ingester = (
            LogIngester(
                log,
                Path(root),
                follow=lambda: (worker,),
                batch_bytes=batch_bytes,
                interval_s=interval_s,
                segment_bytes=segment_bytes,
                fsync_interval_s=fsync_interval_s,
                on_error=on_error,
            )
            if ingest
            else None
        )
        self._policies = dict(policies or {})
        self._default = default_policy or LogPolicy()
        self._rates = {name: p.sample_rate for name, p in self._policies.items()}
        self._default_rate = self._default.sample_rate
        self._drop_when_full = when_full == "drop"
        self._max_pending = max_pending
        # Payload ids: a random prefix per logger and a counter; unique across workers and
        # restarts, and the store's key for a payload (a replayed one is stored once).
        self._prefix = secrets.token_hex(8)
        self._count = 0
        self._groups: dict[tuple[str, str, int], Group] = {}
        self._queued = 0
        self._closed = False
        self.committed = 0
        self.committed_by: Counter[str] = Counter()  # by deployment
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
    ) -> bool:
        """Queue one request for the next ``commit()``; False when the deployment's
        sampling rate leaves it out.

        ``inputs`` is ``{name: column}`` or a 2-D array (rows x fields, named
        by ``input_names``); ``outputs`` is ``{name: column}``. Either may be a
        whole micro-batch's, with ``input_rows``/``output_rows`` = (start, stop)
        naming this request's rows: an object shared by several records is
        written once. Nothing is copied here: do not change the arrays before
        ``commit()``.
        """
        rate = self._rates.get(deployment, self._default_rate)
        if rate < 1.0 and not sampled(request_id, rate):
            self.dropped_by_sampling[deployment] += 1
            return False
        self._group(deployment, model, version).append(
            request_id=request_id,
            ts=ts,
            latency_ms=latency_ms,
            rows=rows,
            arm=arm,
            status=status,
            error=error,
            inputs=inputs,
            input_names=input_names,
            input_rows=input_rows,
            outputs=outputs,
            output_rows=output_rows,
        )
        self._queued += 1
        if self._queued >= self._max_pending:
            self.commit()
        return True

    def record_batch(
        self,
        *,
        model: str,
        version: int,
        request_ids: list[str],
        ts: list[float],
        deployments: list[str],
        arms: list[str],
        spans: list[tuple[int, int]],
        latency_ms: list[float],
        inputs: Mapping[str, Any] | npt.NDArray[Any],
        outputs: Mapping[str, Any],
        input_names: Sequence[str] | None = None,
    ) -> int:
        """Queue the answered requests of one micro-batch: request ``i`` is rows
        ``spans[i]`` of the batch's ``inputs`` and ``outputs``. Returns how many were
        queued (sampling may leave some out)."""
        count = len(request_ids)
        deployment = deployments[0]
        if (
            deployments.count(deployment) != count
            or self._rates.get(deployment, self._default_rate) < 1.0
        ):
            return sum(  # several deployments share this version, or some are sampled
                self.record(
                    request_id=request_ids[i],
                    deployment=deployments[i],
                    model=model,
                    version=version,
                    ts=ts[i],
                    status=200,
                    latency_ms=latency_ms[i],
                    rows=spans[i][1] - spans[i][0],
                    arm=arms[i],
                    inputs=inputs,
                    input_names=input_names,
                    input_rows=spans[i],
                    outputs=outputs,
                    output_rows=spans[i],
                )  # fmt: skip
                for i in range(count)
            )
        group = self._group(deployment, model, version)
        group.request_ids += request_ids
        group.ts += ts
        group.latency_ms += latency_ms
        group.rows += [stop - start for start, stop in spans]
        group.arms += arms
        group.statuses += [200] * count
        group.errors += [None] * count
        group.inputs += [inputs] * count
        group.input_names += [input_names] * count
        group.input_rows += spans
        group.outputs += [outputs] * count
        group.output_rows += spans
        self._queued += count
        return count

    def _group(self, deployment: str, model: str, version: int) -> Group:
        key = (deployment, model, version)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = Group(deployment, model, version)
        return group

    def commit(self) -> int:
        """Write every queued request to the write-ahead log with one ``os.write``.

        Call before sending the batch's responses. Returns the records written.
        Raises ``OverloadedError`` when the log is full and ``when_full`` is
        ``"reject"``, ``StoreError`` when the disk write fails; either way the
        batch's records are discarded and its requests should be answered 503.
        """
        groups, count = self._groups, self._queued
        if not count:
            return 0
        self._groups, self._queued = {}, 0
        if self._closed:
            raise StoreError("the inference log is closed; these records were not written")
        payloads = [payload for group in groups.values() for payload in self._payloads(group)]
        try:
            self._wal.append_many(payloads)
        except OverloadedError:
            if not self._drop_when_full:
                raise
            for group in groups.values():
                self.dropped_when_full[group.deployment] += len(group)
            return 0
        self.committed += count
        for group in groups.values():
            self.committed_by[group.deployment] += len(group)
        return count

    def _payloads(self, group: Group) -> list[bytes]:
        """``group`` as payloads, split where one would pass the write-ahead log's limit."""
        self._count += 1
        payload = encode(group, f"{self._prefix}{self._count:016x}")
        if len(payload) <= MAX_RECORD_BYTES:
            return [payload]
        if len(group) > 1:
            half = len(group) // 2
            return self._payloads(group.take(range(half))) + self._payloads(
                group.take(range(half, len(group)))
            )
        alone = group.take([0])
        alone.inputs, alone.outputs = [None], [None]
        note = f"inputs and outputs not logged: {len(payload)} bytes is over the limit"
        alone.errors = [note]
        return self._payloads(alone)

    # -- the store side -------------------------------------------------------------------

    def start(self) -> None:
        """Start moving the log into the store on a background thread (with ``ingest``)."""
        if self._ingester is not None:
            self._ingester.start()

    def drain(self, timeout_s: float | None = None) -> int:
        """Move everything committed so far, and any orphaned log, into the store on this
        thread; returns the records stored. Store errors propagate."""
        return 0 if self._ingester is None else self._ingester.drain(timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Commit and release the log; with ``ingest``, first stop the thread and drain what
        the store takes. What is not in the store stays on disk for whoever ingests next
        (this process's next start, or a supervisor's ``LogIngester``)."""
        if self._closed:
            return
        self.commit()
        self._closed = True
        if self._ingester is not None:
            self._ingester.close(timeout_s)
        self._wal.close(remove=self._ingester is not None)

    def set_policy(self, deployment: str, policy: LogPolicy) -> None:
        """Change a deployment's sampling rate (and TTL) from now on."""
        self._policies[deployment] = policy
        self._rates[deployment] = policy.sample_rate

    def policy(self, deployment: str) -> LogPolicy:
        return self._policies.get(deployment, self._default)

    def counts(self) -> dict[tuple[str, str], int]:
        """Records by ``(deployment, outcome)``: logged, dropped_by_sampling,
        dropped_when_full (for ``/metrics``)."""
        counts: dict[tuple[str, str], int] = {}
        for outcome, counter in (
            ("logged", self.committed_by),
            ("dropped_by_sampling", self.dropped_by_sampling),
            ("dropped_when_full", self.dropped_when_full),
        ):
            counts.update(((deployment, outcome), n) for deployment, n in counter.items())
        return counts

    def stats(self) -> LogStats:
        ingester = self._ingester
        return LogStats(
            committed=self.committed,
            ingested=0 if ingester is None else ingester.ingested,
            backlog_bytes=self._wal.backlog_bytes(),
            dropped_by_sampling=dict(self.dropped_by_sampling),
            dropped_when_full=dict(self.dropped_when_full),
            rejected_rows=0 if ingester is None else ingester.rejected_rows,
            corrupt_records=self._wal.corrupt_records
            + (0 if ingester is None else ingester.corrupt_records + ingester.undecodable),
            store_errors=0 if ingester is None else ingester.store_errors,
            last_error=None if ingester is None else ingester.last_error,
        )
