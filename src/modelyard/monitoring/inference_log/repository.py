"""What monitoring asks of the store for the inference log and its feedback labels.

Two ports, one per aggregate, in monitoring's own plain types:

* ``InferenceLogRepository``: the stored micro-batches (``StoredBatch``: a write-ahead
  log payload and the ``Summary`` the store indexes it by). Used by the loggers and
  ingesters that store the log, and by the window reads and the retention sweep.
* ``FeedbackRepository``: the labels (``StoredLabel``), one per target, keyed by
  its ``dedupe_key``. Used by ``feedback.FeedbackStore``.

``LabelledLogRepository`` is both at once: the joins of ``feedback_join`` pair the
log's predictions with their labels at query time, so they read one store that
holds the two. ``sql.SqlInferenceLogRepository`` implements all three on the
metadata database; ``memory.InMemoryInferenceLogRepository`` is the fake for tests.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from modelyard.monitoring.inference_log.record import Summary


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """One stored micro-batch: a payload and what the store indexes it by."""

    summary: Summary
    payload: bytes


@dataclass(frozen=True, slots=True)
class StoredLabel:
    """One stored label: its target (a request row, or an entity at a time), the label as
    canonical JSON text, when it was received, and ``dedupe_key``, the target's hash."""

    dedupe_key: str
    label: str
    received_at: float
    request_id: str | None = None
    row: int = 0
    entity_key: str | None = None
    event_time: float | None = None


class KnownRequest(NamedTuple):
    """A logged request as the request index knows it: its most rows over its records and
    its lowest status (below 400: some record of it carries a prediction)."""

    rows: int
    status: int


class EntityLabel(NamedTuple):
    """A label of an entity at a time, as the entity join reads it."""

    entity_key: str
    event_time: float
    label: str


class TrafficBucket(NamedTuple):
    """The requests and errors of one version's batches that began in one time bucket."""

    start: float
    version: int
    requests: int
    errors: int


class InferenceLogRepository(Protocol):
    """The inference log's stored micro-batches."""

    def add_batches(self, batches: Sequence[StoredBatch]) -> None:
        """Store ``batches`` in one transaction; a batch whose id is already stored is
        skipped, so a replayed payload is stored once. Raises ``RejectedWriteError``
        when the store refuses one of them (then none is stored)."""
        ...

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
        """The payloads of ``deployment``'s batches whose first record's time lies in
        ``[first_from, first_to)`` and, with ``last_from``, whose last record's time is at
        or after it (of one version, if given), in the order of the first time and then of
        their ids. With ``newest``, only the latest of them: counting from the latest
        first time down, those from the first time at which the batches passed hold
        ``newest`` requests or more (every batch, if they never do)."""
        ...

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
        """The payloads ``batch_payloads`` would return (without ``newest``), in the same
        order (the reverse with ``newest_first``), ``page`` batches at a time: a pass over a
        long window holds one page in memory, and the SQL adapter reads each page in its
        own short transaction."""
        ...

    def traffic(
        self, deployment: str, start: float, end: float, bucket_s: float
    ) -> list[TrafficBucket]:
        """``deployment``'s requests and errors per version and per ``bucket_s`` bucket
        (aligned on multiples of it) of the batches that began in ``[start, end)``, in the
        order of the bucket and then the version: summed from the batches' counts, never
        from their payloads."""
        ...

    def known_requests(self, request_ids: Collection[str]) -> dict[str, KnownRequest]:
        """The logged requests among ``request_ids`` (of any deployment), by id: an index
        lookup, never a read of the payloads."""
        ...

    def request_payloads(self, deployment: str, request_id: str) -> list[bytes]:
        """The payloads of ``deployment``'s batches that hold a record of ``request_id``
        (its answer and any shadow's), in the order of their first time."""
        ...

    def delete_batches(self, deployment: str, older_than: float, *, chunk: int = 500) -> int:
        """Delete ``deployment``'s batches whose every record has ``ts < older_than``;
        returns the records they held. The SQL adapter deletes ``chunk`` batches per
        transaction, so loggers get the write lock in between."""
        ...

    def deployments(self) -> list[str]:
        """Every deployment with batches in the log, each once."""
        ...

    def latest_model(self, deployment: str) -> str | None:
        """The model of ``deployment``'s batch with the latest record, if it has any."""
        ...


class FeedbackRepository(Protocol):
    """The stored feedback labels, one per target."""

    def put_labels(self, labels: Sequence[StoredLabel]) -> dict[str, str]:
        """Store ``labels`` (distinct ``dedupe_key``s) in one transaction and return the
        label text each key held before, for the keys that were stored already.

        A new key is inserted; a stored key whose label differs takes the new label,
        ``event_time`` and ``received_at`` (its target and its place in storage order
        stay); a stored key with the same label is left untouched. Two writers at once
        still leave one label per key (the database's unique index on the key).
        """
        ...

    def request_labels(self, request_ids: Collection[str]) -> dict[tuple[str, int], str]:
        """The label text of each stored ``(request id, row)`` among ``request_ids``."""
        ...

    def entity_labels(self, start: float, end: float) -> list[EntityLabel]:
        """The labels of entities with ``start <= event_time < end``, by event time (in
        storage order where two share one)."""
        ...


class LabelledLogRepository(InferenceLogRepository, FeedbackRepository, Protocol):
    """The inference log and its labels in one store, as the joins read them."""
