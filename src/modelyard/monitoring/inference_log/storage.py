"""The inference log in the store: one stored batch per micro-batch, windows as arrays,
retention.

A stored batch holds one write-ahead log payload as the serving worker wrote it
(``record``): the records of one deployment, model and version, whose times lie
within ``BATCH_SPAN_S`` of the first. Storing is then one insert per micro-batch
instead of one per request (three B-tree inserts and a JSON text each: ~20 us of CPU
a request, measured), and a window reads back through ``np.frombuffer``. A payload
is stored under the id its writer gave it, so a replayed payload is stored once.

What is here is pure: which batches a payload is stored as, how a window is
assembled from stored payloads, the retention decisions. The table I/O is an
``InferenceLogRepository`` passed in (``sql.SqlInferenceLogRepository`` on the
metadata database, ``memory.InMemoryInferenceLogRepository`` in tests).
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard.monitoring.inference_log.payload import Columns, Payload
from modelyard.monitoring.inference_log.policy import LogPolicy, retention_cutoffs
from modelyard.monitoring.inference_log.record import Group, encode, read_summary
from modelyard.monitoring.inference_log.repository import InferenceLogRepository, StoredBatch
from modelyard.monitoring.window import Window

# A stored batch's records lie within this many seconds of its first, so a window's
# batches are found by an index range over the first record's time.
BATCH_SPAN_S = 60.0


def storable(payload: bytes) -> tuple[list[StoredBatch], int]:
    """The rows ``payload`` is stored as, and how many of its records were unreadable.

    Usually one row holding the payload itself, indexed by the ``Summary`` its
    writer put ahead of it. A payload without one (an older writer's, which may mix
    deployments, models or versions), or spanning more than ``BATCH_SPAN_S``, is
    read record by record and re-encoded into one payload per group; unreadable
    records are left out. Raises ``ValueError`` for a payload that cannot be read.
    """
    summary = read_summary(payload)
    if summary is not None and summary.ts_last - summary.ts_first <= BATCH_SPAN_S:
        return [StoredBatch(summary, payload)], 0
    decoded = Payload(payload)
    groups: dict[tuple[str, str, int], list[int]] = defaultdict(list)
    for number in range(len(decoded)):
        key = (decoded.deployments[number], decoded.models[number], decoded.versions[number])
        groups[key].append(number)
    stored: list[StoredBatch] = []
    for numbers in groups.values():
        numbers.sort(key=lambda n: decoded.ts[n])
        for chunk in _within_span(numbers, decoded.ts):
            # Derived from the payload's own id, so a replay stores under the same ids.
            first = decoded.request_ids[chunk[0]]
            chunk_id = hashlib.blake2b(
                f"{decoded.id}/{first}/{len(stored)}".encode(), digest_size=16
            )
            data = encode(decoded.group(chunk), chunk_id.hexdigest())
            summary = read_summary(data)
            if summary is None:
                raise ValueError("a payload's records cannot be indexed even once re-encoded")
            stored.append(StoredBatch(summary, data))
    return stored, decoded.unreadable


def _within_span(numbers: list[int], ts: list[float]) -> Iterator[list[int]]:
    chunk: list[int] = []
    for number in numbers:
        if chunk and ts[number] - ts[chunk[0]] > BATCH_SPAN_S:
            yield chunk
            chunk = []
        chunk.append(number)
    if chunk:
        yield chunk


def write_records(log: InferenceLogRepository, records: Iterable[Mapping[str, Any]]) -> int:
    """Store records directly, as a serving worker's log would (imports, backfills, tests).

    Each record maps ``request_id``, ``ts``, ``deployment``, ``model``, ``version``,
    ``status``, ``latency_ms`` and ``rows`` (``arm`` and ``error`` optional) and
    optionally ``inputs`` and ``outputs`` (``{name: column}``, one entry per row).
    Returns the records stored.
    """
    groups: dict[tuple[str, str, int], Group] = {}
    for record in records:
        key = (record["deployment"], record["model"], record["version"])
        group = groups.get(key)
        if group is None:
            group = groups[key] = Group(*key)
        group.append(
            request_id=record["request_id"],
            ts=record["ts"],
            latency_ms=record["latency_ms"],
            rows=record["rows"],
            arm=record.get("arm", "primary"),
            status=record["status"],
            error=record.get("error"),
            inputs=record.get("inputs"),
            outputs=record.get("outputs"),
        )
    batches = []
    for group in groups.values():
        batches += storable(encode(group, secrets.token_hex(16)))[0]
    log.add_batches(batches)
    return sum(len(group) for group in groups.values())


# -- reading ------------------------------------------------------------------------------


def read_payloads(
    log: InferenceLogRepository,
    deployment: str,
    start: float,
    end: float,
    *,
    version: int | None = None,
    newest: int | None = None,
) -> list[Payload]:
    """The stored payloads that may hold records of ``deployment`` with ``start <= ts < end``
    (one that cannot be read is skipped: it was checked when stored, so that is a bug).
    With ``newest``, only the latest payloads that hold at least that many requests."""
    stored = log.batch_payloads(
        deployment, start - BATCH_SPAN_S, end, last_from=start, version=version, newest=newest
    )
    return _decoded(stored)


def _decoded(stored: Iterable[bytes]) -> list[Payload]:
    payloads = []
    for data in stored:
        with contextlib.suppress(ValueError):
            payloads.append(Payload(data))
    return payloads


def scan_window(
    log: InferenceLogRepository,
    deployment: str,
    start: float,
    end: float,
    *,
    version: int | None = None,
    page: int = 500,
) -> Iterator[Window]:
    """The window ``read_window`` would read (without ``newest``), as consecutive parts of
    at most ``page`` stored batches each, so a pass over it holds one part in memory.

    Each part is a ``Window`` with the whole window's ``start`` and ``end`` and its own
    requests in time order; a request is in exactly one part. Two workers' batches
    overlap in time, so a later part may hold requests older than an earlier one's.
    """
    pages = log.batch_pages(
        deployment, start - BATCH_SPAN_S, end, last_from=start, version=version, page=page
    )
    for stored in pages:
        part = assemble_window(_decoded(stored), deployment, start, end, version=version)
        if part.requests:
            yield part


def read_window(
    log: InferenceLogRepository,
    deployment: str,
    start: float,
    end: float,
    *,
    version: int | None = None,
    newest: int | None = None,
) -> Window:
    """Records of ``deployment`` with ``start <= ts < end`` (one version, if given), as arrays.

    Requests are in time order. Row-level arrays cover the rows of records that
    logged inputs; numeric columns are float64 (NaN where a record lacks the
    column), int64 or bool, others object arrays (see ``column_array``).
    ``labels`` is None: ``feedback_join.joined`` fills it. With ``newest`` (a
    bound on what one read holds in memory), about the latest that many requests,
    and the window then starts at the first of them, so rates stay true. The whole
    window is in memory: ``scan_window`` reads a long one part by part.
    """
    payloads = read_payloads(log, deployment, start, end, version=version, newest=newest)
    return assemble_window(payloads, deployment, start, end, version=version, newest=newest)


def assemble_window(
    payloads: Sequence[Payload],
    deployment: str,
    start: float,
    end: float,
    *,
    version: int | None = None,
    newest: int | None = None,
) -> Window:
    """The records of ``payloads`` with ``start <= ts < end`` as a ``Window`` (see
    ``read_window``)."""
    chosen: list[tuple[Payload, int]] = []
    for payload in payloads:
        versions = payload.versions
        for number, at in enumerate(payload.ts):
            if start <= at < end and (version is None or versions[number] == version):
                chosen.append((payload, number))
    ts = np.array([p.ts[n] for p, n in chosen], dtype=np.float64)
    if len(ts) > 1 and (np.diff(ts) < 0).any():  # two workers' batches interleave in time
        order = np.argsort(ts, kind="stable")
        chosen = [chosen[i] for i in order]
        ts = ts[order]
    if newest is not None and len(chosen) > newest:
        chosen, ts = chosen[-newest:], ts[-newest:]
        start = float(ts[0])
    counts = []
    # Runs of requests whose rows follow each other in one payload's blocks (a
    # micro-batch read in order) are gathered as one piece per column.
    runs: list[tuple[Payload, list[int], list[int] | None]] = []
    for payload, number in chosen:
        in_ref = payload.in_refs[number]
        count = 0 if in_ref is None else in_ref[2] - in_ref[1]
        counts.append(count)
        if not count or in_ref is None:
            continue
        out_ref = payload.out_refs[number]
        last = runs[-1] if runs else None
        if (
            last is not None
            and last[0] is payload
            and last[1][0] == in_ref[0]
            and last[1][2] == in_ref[1]
            and _follows(last[2], out_ref, count)
        ):
            last[1][2] += count
            if last[2] is not None:
                last[2][2] += count
        else:
            runs.append((payload, list(in_ref), None if out_ref is None else list(out_ref)))
    inputs, outputs = _Gather(), _Gather()
    for payload, in_span, out_span in runs:
        rows = in_span[2] - in_span[1]
        inputs.add(payload, (in_span[0], in_span[1], in_span[2]), rows)
        out = None if out_span is None else (out_span[0], out_span[1], out_span[2])
        outputs.add(payload, out, rows)
    return Window(
        deployment=deployment,
        start=start,
        end=end,
        request_ids=_objects([p.request_ids[n] for p, n in chosen]),
        ts=ts,
        version=np.array([p.versions[n] for p, n in chosen], dtype=np.int64),
        arm=_objects([p.arms[n] for p, n in chosen]),
        status=np.array([p.statuses[n] for p, n in chosen], dtype=np.int64),
        latency_ms=np.array([p.latency_ms[n] for p, n in chosen], dtype=np.float64),
        row_request=np.repeat(np.arange(len(chosen), dtype=np.int64), counts),
        inputs=inputs.columns(),
        outputs=outputs.columns(),
    )


def _follows(last: list[int] | None, ref: tuple[int, int, int] | None, count: int) -> bool:
    """Whether output rows ``ref``, as many as the record's ``count`` input rows, continue
    the run's ``last`` (a record with fewer outputs than inputs starts its own run)."""
    if last is None or ref is None:
        return last is None and ref is None
    return last[0] == ref[0] and last[2] == ref[1] and ref[2] - ref[1] == count


class _Gather:
    """Row-level columns gathered from many payloads' blocks, as pieces to join at the end.

    A piece is ``(column, start, stop)``, or ``(None, 0, rows)`` where a record lacks
    the column. ``read_window`` adds a run of requests whose rows follow each other
    as one piece, so a micro-batch read in order costs one slice per column.
    """

    def __init__(self) -> None:
        self._pieces: dict[str, list[tuple[Any, int, int]]] = {}
        self._rows = 0

    def add(self, payload: Payload, ref: tuple[int, int, int] | None, count: int) -> None:
        block: Columns = {} if ref is None else payload.blocks[ref[0]]
        start = 0 if ref is None else ref[1]
        for name, column in block.items():
            pieces = self._pieces.get(name)
            if pieces is None:
                pieces = self._pieces[name] = [(None, 0, self._rows)] if self._rows else []
            stop = min(start + count, len(column))
            pieces.append((column, start, stop))
            if stop - start < count:  # fewer output rows than input rows
                pieces.append((None, 0, count - (stop - start)))
        for name, pieces in self._pieces.items():
            if name not in block:
                pieces.append((None, 0, count))
        self._rows += count

    def columns(self) -> dict[str, npt.NDArray[Any]]:
        return {name: _join(pieces) for name, pieces in self._pieces.items()}


def _join(pieces: list[tuple[Any, int, int]]) -> npt.NDArray[Any]:
    """One column from its pieces (see ``column_array`` for the dtypes)."""
    arrays = [c[a:b] for c, a, b in pieces if c is not None]
    missing = any(c is None for c, _, _ in pieces)
    numeric = all(isinstance(a, np.ndarray) and a.dtype.kind in "biuf" for a in arrays)
    if arrays and numeric and len({a.shape[1:] for a in arrays}) == 1:
        kinds = {a.dtype.kind for a in arrays}
        if not missing and kinds == {"b"}:
            return np.concatenate(arrays)
        if not missing and kinds <= {"i", "u"}:
            return np.concatenate(arrays).astype(np.int64, copy=False)
        if not missing:
            return np.concatenate(arrays).astype(np.float64, copy=False)
        if kinds != {"b"}:
            shape = arrays[0].shape[1:]
            parts = [
                np.full((b, *shape), np.nan) if c is None else c[a:b].astype(np.float64)
                for c, a, b in pieces
            ]
            return np.concatenate(parts)
    values: list[Any] = []
    for column, a, b in pieces:
        if column is None:
            values += [None] * b
        else:
            part = column[a:b]
            values += part.tolist() if isinstance(part, np.ndarray) else list(part)
    return column_array(values)


def row_numbers(window: Window) -> npt.NDArray[np.int64]:
    """Each row's number within its request (rows of a request are contiguous, in order)."""
    counts = np.bincount(window.row_request, minlength=window.requests)
    starts = np.cumsum(counts) - counts
    numbers: npt.NDArray[np.int64] = np.arange(window.rows, dtype=np.int64)
    numbers -= starts[window.row_request]
    return numbers


def column_array(values: list[Any]) -> npt.NDArray[Any]:
    """float64 (None as NaN), int64, bool or, for anything else, an object array."""
    kinds = set(map(type, values))
    try:
        if kinds == {int}:
            return np.array(values, dtype=np.int64)
        if kinds == {bool}:
            return np.array(values, dtype=bool)
        if kinds and kinds <= {int, float, type(None)} and kinds != {type(None)}:
            return np.array(values, dtype=np.float64)
        if kinds == {list}:
            return np.array(values, dtype=np.float64)  # per-row vectors (class scores)
    except (OverflowError, ValueError, TypeError):
        pass
    return _objects(values)


def _objects(values: list[Any]) -> npt.NDArray[Any]:
    array = np.empty(len(values), dtype=object)
    for number, value in enumerate(values):
        array[number] = value
    return array


# -- retention ----------------------------------------------------------------------------


def purge(
    log: InferenceLogRepository,
    older_than: float,
    *,
    deployment: str | None = None,
    chunk: int = 500,
) -> int:
    """Delete the batches whose every record has ``ts < older_than`` (of one deployment, or
    of all); returns the records deleted. One short transaction per ``chunk`` batches
    keeps the SQLite write lock free for the loggers in between."""
    names = log.deployments() if deployment is None else [deployment]
    return sum(log.delete_batches(name, older_than, chunk=chunk) for name in names)


def retention_sweep(
    log: InferenceLogRepository,
    now: float,
    *,
    policies: Mapping[str, LogPolicy] | None = None,
    default: LogPolicy | None = None,
) -> dict[str, int]:
    """Apply each deployment's TTL at time ``now``; returns the records deleted per deployment."""
    cutoffs = retention_cutoffs(log.deployments(), policies or {}, default or LogPolicy(), now)
    return {name: log.delete_batches(name, cutoff) for name, cutoff in cutoffs.items()}
