"""The inference log and its feedback labels in memory: the fake of ``repository``'s ports.

Real enough to run monitoring's logic in tests without a database: loggers and
ingesters store into it (from their threads: a lock guards it), windows and joins
read from it, the retention sweep deletes from it. The contract test
(``tests/integration/monitoring/test_inference_log_repository_contract.py``) runs the
same assertions against it and ``sql.SqlInferenceLogRepository``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Collection, Iterator, Sequence

from modelyard.monitoring.inference_log.item_labels import merge_labels
from modelyard.monitoring.inference_log.payload import RequestEntry, request_entries
from modelyard.monitoring.inference_log.repository import (
    EntityLabel,
    KnownRequest,
    StoredBatch,
    StoredLabel,
    TrafficBucket,
)


class InMemoryInferenceLogRepository:
    """``InferenceLogRepository`` and ``FeedbackRepository`` over a dict of each."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._batches: dict[str, StoredBatch] = {}  # by id, in storage order
        self._labels: dict[str, StoredLabel] = {}  # by dedupe key, in storage order

    # -- the inference log ------------------------------------------------------------------

    def add_batches(self, batches: Sequence[StoredBatch]) -> None:
        with self._lock:
            for batch in batches:
                self._batches.setdefault(batch.summary.id, batch)

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
        with self._lock:
            found = [
                batch
                for batch in self._batches.values()
                if batch.summary.deployment == deployment
                and first_from <= batch.summary.ts_first < first_to
                and (last_from is None or batch.summary.ts_last >= last_from)
                and (version is None or batch.summary.version == version)
            ]
        if newest is not None:
            total = 0
            for batch in sorted(found, key=lambda b: b.summary.ts_first, reverse=True):
                total += batch.summary.requests
                if total >= newest:
                    cut = batch.summary.ts_first
                    found = [b for b in found if b.summary.ts_first >= cut]
                    break
        found.sort(key=lambda b: (b.summary.ts_first, b.summary.id))
        return [batch.payload for batch in found]

    def traffic(
        self, deployment: str, start: float, end: float, bucket_s: float
    ) -> list[TrafficBucket]:
        sums: dict[tuple[int, int], list[int]] = {}
        with self._lock:
            for batch in self._batches.values():
                summary = batch.summary
                if summary.deployment == deployment and start <= summary.ts_first < end:
                    key = (math.floor(summary.ts_first / bucket_s), summary.version)
                    counts = sums.setdefault(key, [0, 0])
                    counts[0] += summary.requests
                    counts[1] += summary.errors
        return [
            TrafficBucket(number * bucket_s, version, requests, errors)
            for (number, version), (requests, errors) in sorted(sums.items())
        ]

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
        found = self.batch_payloads(
            deployment, first_from, first_to, last_from=last_from, version=version
        )
        if newest_first:
            found.reverse()
        for at in range(0, len(found), page):
            yield found[at : at + page]

    def delete_batches(self, deployment: str, older_than: float, *, chunk: int = 500) -> int:
        with self._lock:
            doomed = [
                batch
                for batch in self._batches.values()
                if batch.summary.deployment == deployment
                and batch.summary.ts_first < older_than
                and batch.summary.ts_last < older_than
            ]
            for batch in doomed:
                del self._batches[batch.summary.id]
        return sum(batch.summary.requests for batch in doomed)

    def known_requests(self, request_ids: Collection[str]) -> dict[str, KnownRequest]:
        wanted = set(request_ids)
        found: dict[str, KnownRequest] = {}
        for batch in self._stored():
            for entry in _entries(batch.payload):
                if entry.request_id in wanted:
                    before = found.get(entry.request_id)
                    rows, status = entry.rows, entry.status
                    if before is not None:
                        rows, status = max(rows, before.rows), min(status, before.status)
                    found[entry.request_id] = KnownRequest(rows, status)
        return found

    def request_payloads(self, deployment: str, request_id: str) -> list[bytes]:
        found = [
            batch
            for batch in self._stored()
            if batch.summary.deployment == deployment
            and any(e.request_id == request_id for e in _entries(batch.payload))
        ]
        found.sort(key=lambda b: (b.summary.ts_first, b.summary.id))
        return [batch.payload for batch in found]

    def _stored(self) -> list[StoredBatch]:
        with self._lock:
            return list(self._batches.values())

    def deployments(self) -> list[str]:
        with self._lock:
            return list(dict.fromkeys(b.summary.deployment for b in self._batches.values()))

    def latest_model(self, deployment: str) -> str | None:
        with self._lock:
            mine = [b.summary for b in self._batches.values() if b.summary.deployment == deployment]
        return max(mine, key=lambda s: s.ts_last).model if mine else None

    # -- feedback labels --------------------------------------------------------------------

    def put_labels(self, labels: Sequence[StoredLabel]) -> dict[str, str]:
        with self._lock:
            before: dict[str, str] = {}
            for label in labels:
                stored = self._labels.get(label.dedupe_key)
                if stored is None:
                    self._labels[label.dedupe_key] = label
                    continue
                before[label.dedupe_key] = stored.label
                text = merge_labels(stored.label, label.label)
                if stored.label != text:  # the target stays, as the SQL upsert keeps it
                    self._labels[label.dedupe_key] = StoredLabel(
                        dedupe_key=stored.dedupe_key,
                        label=text,
                        received_at=label.received_at,
                        request_id=stored.request_id,
                        row=stored.row,
                        entity_key=stored.entity_key,
                        event_time=label.event_time,
                    )
            return before

    def request_labels(self, request_ids: Collection[str]) -> dict[tuple[str, int], str]:
        wanted = set(request_ids)
        with self._lock:
            return {
                (label.request_id, label.row): label.label
                for label in self._labels.values()
                if label.request_id is not None and label.request_id in wanted
            }

    def entity_labels(self, start: float, end: float) -> list[EntityLabel]:
        with self._lock:
            found = [
                EntityLabel(label.entity_key, label.event_time, label.label)
                for label in self._labels.values()
                if label.entity_key is not None
                and label.event_time is not None
                and start <= label.event_time < end
            ]
        return sorted(found, key=lambda e: e.event_time)  # stable: storage order on a tie


def _entries(payload: bytes) -> list[RequestEntry]:
    try:
        return request_entries(payload)
    except ValueError:  # a test's placeholder bytes, as the SQL adapter skips them
        return []
