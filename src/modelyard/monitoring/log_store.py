"""The ``inference_log`` table: idempotent writes, windows as arrays, retention.

``inputs`` and ``outputs`` are JSON text, ``{name: [value per row]}``. A record
keeps the id it was given on the hot path, so a replayed record lands on the
same primary key and is ignored (``INSERT ... ON CONFLICT DO NOTHING``, on
SQLite and PostgreSQL alike).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from sqlalchemy import delete, select

from modelyard.monitoring.log_policy import LogPolicy, retention_cutoffs
from modelyard.monitoring.log_record import COLUMNS
from modelyard.monitoring.window import Window
from modelyard.store.database import Database
from modelyard.store.schema import inference_log

_INSERT = (
    f"INSERT INTO {inference_log.name} ({', '.join(COLUMNS)}) VALUES ({{marks}}) "
    "ON CONFLICT (id) DO NOTHING"
)


def insert_rows(db: Database, rows: Sequence[Sequence[Any]]) -> None:
    """Write rows (``log_record.COLUMNS`` order) in one transaction; known ids are skipped.

    Straight to the driver's ``executemany``: SQLAlchemy's per-row parameter
    handling cost more than SQLite's insert itself (~20 us a row, measured).
    """
    if not rows:
        return
    with db.write() as conn:
        mark = "%s" if conn.dialect.name == "postgresql" else "?"
        conn.exec_driver_sql(_INSERT.format(marks=", ".join([mark] * len(COLUMNS))), list(rows))


# -- reading ------------------------------------------------------------------------------


def read_window(
    db: Database, deployment: str, start: float, end: float, *, version: int | None = None
) -> Window:
    """Records of ``deployment`` with ``start <= ts < end`` (one version, if given), as arrays.

    Row-level arrays cover the rows of records that logged inputs; numeric
    columns are float64 with NaN for a missing value, others object arrays
    (see ``column_array``). ``labels`` is None: ``feedback_join.joined`` fills it.
    """
    log = inference_log.c
    query = (
        select(
            log.request_id,
            log.ts,
            log.version,
            log.arm,
            log.status,
            log.latency_ms,
            log.inputs,
            log.outputs,
        )
        .where(log.deployment == deployment, log.ts >= start, log.ts < end)
        .order_by(log.ts, log.id)
    )
    if version is not None:
        query = query.where(log.version == version)
    with db.read() as conn:
        records = conn.execute(query).all()
    inputs = [None if r.inputs is None else orjson.loads(r.inputs) for r in records]
    outputs = [None if r.outputs is None else orjson.loads(r.outputs) for r in records]
    counts = [len(next(iter(doc.values()))) if doc else 0 for doc in inputs]
    return Window(
        deployment=deployment,
        start=start,
        end=end,
        request_ids=_objects([r.request_id for r in records]),
        ts=np.array([r.ts for r in records], dtype=np.float64),
        version=np.array([r.version for r in records], dtype=np.int64),
        arm=_objects([r.arm for r in records]),
        status=np.array([r.status for r in records], dtype=np.int64),
        latency_ms=np.array([r.latency_ms for r in records], dtype=np.float64),
        row_request=np.repeat(np.arange(len(records), dtype=np.int64), counts),
        inputs=_columns(inputs, counts),
        outputs=_columns(outputs, counts),
    )


def row_numbers(window: Window) -> npt.NDArray[np.int64]:
    """Each row's number within its request (rows of a request are contiguous, in order)."""
    counts = np.bincount(window.row_request, minlength=window.requests)
    starts = np.cumsum(counts) - counts
    numbers: npt.NDArray[np.int64] = np.arange(window.rows, dtype=np.int64)
    numbers -= starts[window.row_request]
    return numbers


def _columns(docs: list[dict[str, list[Any]] | None], counts: list[int]) -> dict[str, Any]:
    """Per-row arrays over all records, padded with None where a record lacks a column."""
    names: dict[str, None] = {}
    for doc in docs:
        if doc:
            names.update(dict.fromkeys(doc))
    columns = {}
    for name in names:
        values: list[Any] = []
        for doc, count in zip(docs, counts, strict=True):
            part = doc.get(name) if doc else None
            if part is None:
                values += [None] * count
            else:
                values += part[:count] + [None] * (count - len(part))
        columns[name] = column_array(values)
    return columns


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
    db: Database, older_than: float, *, deployment: str | None = None, chunk: int = 5000
) -> int:
    """Delete records with ``ts < older_than``; one short transaction per ``chunk`` rows.

    Short transactions keep the SQLite write lock free for the loggers between
    chunks. Returns the number of records deleted.
    """
    log = inference_log.c
    doomed = select(log.id).where(log.ts < older_than).limit(chunk)
    if deployment is not None:
        doomed = doomed.where(log.deployment == deployment)
    total = 0
    while True:
        with db.write() as conn:
            deleted = conn.execute(delete(inference_log).where(log.id.in_(doomed))).rowcount
        total += deleted
        if deleted < chunk:
            return total


def deployments(db: Database) -> list[str]:
    """Every deployment with records in the log."""
    with db.read() as conn:
        return list(conn.execute(select(inference_log.c.deployment).distinct()).scalars())


def retention_sweep(
    db: Database,
    now: float,
    *,
    policies: Mapping[str, LogPolicy] | None = None,
    default: LogPolicy | None = None,
) -> dict[str, int]:
    """Apply each deployment's TTL at time ``now``; returns the records deleted per deployment."""
    cutoffs = retention_cutoffs(deployments(db), policies or {}, default or LogPolicy(), now)
    return {name: purge(db, cutoff, deployment=name) for name, cutoff in cutoffs.items()}
