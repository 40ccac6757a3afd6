"""The inference log and its feedback labels on the metadata database (SQLite or PostgreSQL).

``SqlInferenceLogRepository(db)`` is the one adapter of the ports in ``repository``:
``inference_batches`` (one row per stored micro-batch) and ``feedback`` (one row per
labelled target). How each statement goes:

* storing batches: one ``INSERT ... ON CONFLICT (id) DO NOTHING`` per micro-batch,
  straight to the driver's ``executemany`` (SQLAlchemy's per-row parameter handling
  costs more than SQLite's insert itself), in one ``db.write()`` transaction;
* storing labels: one ``db.write()`` that reads the stored labels of the keys and
  then upserts (``ON CONFLICT (dedupe_key) DO UPDATE ... WHERE label differs``);
* every read and the retention deletes: SQLAlchemy Core on ``db.read()`` /
  ``db.write()`` connections. A window's payloads come back as bytes, decoded by
  ``storage`` with ``np.frombuffer``; the index on ``(deployment, ts_first)`` finds
  them, and the old batches a sweep deletes, without reading the table through.

SQLAlchemy's errors become ``RejectedWriteError`` / ``StoreError`` inside ``Database``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence

from sqlalchemy import ColumnElement, Integer, and_, cast, delete, desc, func, or_, select

from modelyard.monitoring.inference_log.item_labels import merge_labels
from modelyard.monitoring.inference_log.payload import RequestEntry, request_entries
from modelyard.monitoring.inference_log.record import Summary
from modelyard.monitoring.inference_log.repository import (
    EntityLabel,
    KnownRequest,
    StoredBatch,
    StoredLabel,
    TrafficBucket,
)
from modelyard.store.database import Database, upsert
from modelyard.store.schema import feedback, inference_batches, inference_requests

_BATCH_COLUMNS = (*Summary._fields, "payload")  # the table's columns, in this order
_INSERT = (
    f"INSERT INTO {inference_batches.name} ({', '.join(_BATCH_COLUMNS)}) VALUES ({{marks}}) "
    "ON CONFLICT (id) DO NOTHING"
)
_INDEX = (
    f'INSERT INTO {inference_requests.name} (request_id, batch_id, "rows", status) '
    "VALUES ({marks}) ON CONFLICT (request_id, batch_id) DO NOTHING"
)
_LOOKUP_CHUNK = 500  # keys per IN (...) query


class SqlInferenceLogRepository:
    """``InferenceLogRepository`` and ``FeedbackRepository`` (so ``LabelledLogRepository``)
    over ``db``'s ``inference_batches`` and ``feedback`` tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- the inference log ------------------------------------------------------------------

    def add_batches(self, batches: Sequence[StoredBatch]) -> None:
        if not batches:
            return
        rows = [(*batch.summary, batch.payload) for batch in batches]
        # Each request's (id, batch) in the same transaction: a request is in the index
        # exactly when its batch is stored. Read from the header alone (no block decoded).
        entries = [
            (entry.request_id, batch.summary.id, entry.rows, entry.status)
            for batch in batches
            for entry in _entries(batch.payload)
        ]
        with self._db.write() as conn:
            mark = "%s" if conn.dialect.name == "postgresql" else "?"
            marks = ", ".join([mark] * len(_BATCH_COLUMNS))
            conn.exec_driver_sql(_INSERT.format(marks=marks), rows)
            if entries:
                conn.exec_driver_sql(_INDEX.format(marks=", ".join([mark] * 4)), entries)

    def batch_payloads(
        self,
        deployment: str,
        first_from: float,
        first_to: float,
        *,
        last_from: float | None = None,
        version: int | None = None,
        newest: int | None = None,
    ) -> list[bytes]:
        batch = inference_batches.c
        where = _window(deployment, first_from, first_to, last_from, version)
        with self._db.read() as conn:
            if newest is not None:
                # Counted from the small columns first, so the payloads are read only once.
                latest = select(batch.ts_first, batch.requests).where(*where)
                total = 0
                for ts_first, requests in conn.execute(latest.order_by(desc(batch.ts_first))):
                    total += requests
                    if total >= newest:
                        where.append(batch.ts_first >= ts_first)
                        break
            query = select(batch.payload).where(*where).order_by(batch.ts_first, batch.id)
            stored = conn.execute(query).scalars().all()
        return [bytes(data) for data in stored]

    def batch_pages(
        self,
        deployment: str,
        first_from: float,
        first_to: float,
        *,
        last_from: float | None = None,
        version: int | None = None,
        page: int = 500,
        newest_first: bool = False,
    ) -> Iterator[list[bytes]]:
        batch = inference_batches.c
        where = _window(deployment, first_from, first_to, last_from, version)
        query = select(batch.ts_first, batch.id, batch.payload)
        if newest_first:
            query = query.order_by(desc(batch.ts_first), desc(batch.id))
        else:
            query = query.order_by(batch.ts_first, batch.id)
        after: tuple[float, str] | None = None
        while True:
            # Keyset paging on (ts_first, id): each page is one short read, so a long pass
            # holds no read transaction open (SQLite's WAL could not checkpoint past it).
            paged = query.where(*where)
            if after is not None:
                ts, key = after
                if newest_first:
                    later = or_(batch.ts_first < ts, and_(batch.ts_first == ts, batch.id < key))
                else:
                    later = or_(batch.ts_first > ts, and_(batch.ts_first == ts, batch.id > key))
                paged = paged.where(later)
            with self._db.read() as conn:
                rows = conn.execute(paged.limit(page)).all()
            if rows:
                yield [bytes(row.payload) for row in rows]
            if len(rows) < page:
                return
            after = (rows[-1].ts_first, rows[-1].id)

    def delete_batches(self, deployment: str, older_than: float, *, chunk: int = 500) -> int:
        batch = inference_batches.c
        # By deployment and ts_first first: the index finds the old batches without reading
        # the table (and its payloads) through, as an hourly sweep would otherwise.
        doomed = (
            select(batch.id, batch.requests)
            .where(
                batch.deployment == deployment,
                batch.ts_first < older_than,
                batch.ts_last < older_than,
            )
            .limit(chunk)
        )
        total = 0
        while True:
            with self._db.write() as conn:
                found = conn.execute(doomed).all()
                if found:
                    ids = [row.id for row in found]
                    conn.execute(delete(inference_batches).where(batch.id.in_(ids)))
                    conn.execute(
                        delete(inference_requests).where(inference_requests.c.batch_id.in_(ids))
                    )
            total += sum(int(row.requests) for row in found)
            if len(found) < chunk:
                return total

    def traffic(
        self, deployment: str, start: float, end: float, bucket_s: float
    ) -> list[TrafficBucket]:
        batch = inference_batches.c
        scaled = batch.ts_first / bucket_s
        # floor(): SQLite's CAST truncates (the times are positive), PostgreSQL's rounds.
        number = cast(scaled, Integer) if self._db.is_sqlite else func.floor(scaled)
        bucket = number.label("bucket")
        query = (
            select(bucket, batch.version, func.sum(batch.requests), func.sum(batch.errors))
            .where(*_window(deployment, start, end, None, None))
            .group_by(bucket, batch.version)
            .order_by(bucket, batch.version)
        )
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return [
            TrafficBucket(int(number) * bucket_s, int(version), int(requests), int(errors))
            for number, version, requests, errors in rows
        ]

    def known_requests(self, request_ids: Collection[str]) -> dict[str, KnownRequest]:
        index = inference_requests.c
        wanted = sorted(set(request_ids))
        found: dict[str, KnownRequest] = {}
        with self._db.read() as conn:
            for at in range(0, len(wanted), _LOOKUP_CHUNK):
                query = (
                    select(index.request_id, func.max(index.rows), func.min(index.status))
                    .where(index.request_id.in_(wanted[at : at + _LOOKUP_CHUNK]))
                    .group_by(index.request_id)
                )
                found.update(
                    (request_id, KnownRequest(int(rows), int(status)))
                    for request_id, rows, status in conn.execute(query)
                )
        return found

    def request_payloads(self, deployment: str, request_id: str) -> list[bytes]:
        batch, index = inference_batches.c, inference_requests.c
        # Two reads, so that each is a primary-key lookup: joined in one query, SQLite's
        # planner (without statistics) walked every batch of the deployment instead and
        # probed the request index for each (127 ms at a million logged requests).
        batches = select(index.batch_id).where(index.request_id == request_id)
        with self._db.read() as conn:
            ids = list(conn.execute(batches).scalars())
            if not ids:
                return []
            query = (
                select(batch.payload)
                .where(batch.id.in_(ids), batch.deployment == deployment)
                .order_by(batch.ts_first, batch.id)
            )
            return [bytes(data) for data in conn.execute(query).scalars()]

    def deployments(self) -> list[str]:
        with self._db.read() as conn:
            query = select(inference_batches.c.deployment).distinct()
            return list(conn.execute(query).scalars())

    def latest_model(self, deployment: str) -> str | None:
        batch = inference_batches.c
        query = (
            select(batch.model)
            .where(batch.deployment == deployment)
            .order_by(desc(batch.ts_last))
            .limit(1)
        )
        with self._db.read() as conn:
            model = conn.execute(query).scalar()
        return None if model is None else str(model)

    # -- feedback labels --------------------------------------------------------------------

    def put_labels(self, labels: Sequence[StoredLabel]) -> dict[str, str]:
        if not labels:
            return {}
        keys = [label.dedupe_key for label in labels]
        rows = [
            {
                "request_id": label.request_id,
                "row": label.row,
                "entity_key": label.entity_key,
                "event_time": label.event_time,
                "label": label.label,
                "received_at": label.received_at,
                "dedupe_key": label.dedupe_key,
            }
            for label in labels
        ]
        fb = feedback.c
        with self._db.write() as conn:
            stored: dict[str, str] = {}
            for start in range(0, len(keys), _LOOKUP_CHUNK):
                chunk = keys[start : start + _LOOKUP_CHUNK]
                query = select(fb.dedupe_key, fb.label).where(fb.dedupe_key.in_(chunk))
                stored.update((key, label) for key, label in conn.execute(query))
            for row, label in zip(rows, labels, strict=True):  # clicks on one list accumulate
                if label.dedupe_key in stored:
                    row["label"] = merge_labels(stored[label.dedupe_key], label.label)
            insert = upsert(conn, feedback)
            statement = insert.on_conflict_do_update(
                index_elements=["dedupe_key"],
                set_={
                    "label": insert.excluded.label,
                    "event_time": insert.excluded.event_time,
                    "received_at": insert.excluded.received_at,
                },
                where=fb.label != insert.excluded.label,
            )
            conn.execute(statement, rows)
        return stored

    def request_labels(self, request_ids: Collection[str]) -> dict[tuple[str, int], str]:
        fb = feedback.c
        wanted = sorted(request_ids)
        stored: dict[tuple[str, int], str] = {}
        with self._db.read() as conn:
            for at in range(0, len(wanted), _LOOKUP_CHUNK):
                query = select(fb.request_id, fb.row, fb.label).where(
                    fb.request_id.in_(wanted[at : at + _LOOKUP_CHUNK])
                )
                stored.update(((r.request_id, r.row), r.label) for r in conn.execute(query))
        return stored

    def entity_labels(self, start: float, end: float) -> list[EntityLabel]:
        fb = feedback.c
        query = (
            select(fb.entity_key, fb.event_time, fb.label)
            .where(fb.entity_key.is_not(None), fb.event_time >= start, fb.event_time < end)
            .order_by(fb.event_time, fb.id)
        )
        with self._db.read() as conn:
            return [EntityLabel(*row) for row in conn.execute(query)]


def _entries(payload: bytes) -> list[RequestEntry]:
    """The requests of a payload to index; none for one that cannot be read (``storable``
    checked it, so only a test's placeholder bytes get here)."""
    try:
        return request_entries(payload)
    except ValueError:
        return []


def _window(
    deployment: str,
    first_from: float,
    first_to: float,
    last_from: float | None,
    version: int | None,
) -> list[ColumnElement[bool]]:
    """The conditions of a window read: the index on (deployment, ts_first) bounds the scan,
    and ``ts_last`` leaves out the batches that ended before the window began."""
    batch = inference_batches.c
    where = [batch.deployment == deployment, batch.ts_first >= first_from]
    where.append(batch.ts_first < first_to)
    if last_from is not None:
        where.append(batch.ts_last >= last_from)
    if version is not None:
        where.append(batch.version == version)
    return where
