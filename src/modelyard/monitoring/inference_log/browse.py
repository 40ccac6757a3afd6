"""The inference log from the outside: logged requests listed with filters, newest first,
and one request shown with its inputs, features, outputs and labels.

``list_requests`` pages through the stored batches newest first (``batch_pages``) and
keeps the ``limit`` newest matches, so memory holds one page and the matches. A batch's
records lie within ``BATCH_SPAN_S`` of its first, so once every kept match is newer than
the first time of the last page read plus that span, no unread batch can hold a newer
one and the pass stops. ``search_requests`` does the same within a budget of records
read, so that a filter matching little (``status="error"`` over a million requests)
answers in bounded time, saying how far back it searched; the dashboard pages on from
there. ``show_request`` finds a request's batches through the request index
(``request_payloads``), not by reading the log.

Labels are the ones posted for the request id (``feedback``); a label posted for an
entity is matched when monitoring reads a window and is not shown here.
"""

from __future__ import annotations

import contextlib
import heapq
import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import orjson

from modelyard.errors import ValidationError
from modelyard.monitoring.inference_log.payload import Columns, Payload
from modelyard.monitoring.inference_log.repository import LabelledLogRepository
from modelyard.monitoring.inference_log.storage import BATCH_SPAN_S

MAX_LIMIT = 10_000
_FAR = 1e300  # an open end of the time range, as a number both databases compare


@dataclass(frozen=True)
class RequestQuery:
    """Which logged requests of ``deployment`` to list: ``since <= ts < until``, of one
    ``version`` and ``arm``, answered with ``status`` (a code, or ``"ok"`` for below 400 and
    ``"error"`` for 400 and above), ``labelled`` (True: with a label for some row, False:
    without any), whose id starts with ``request_id_prefix``; the ``limit`` newest."""

    deployment: str
    since: float | None = None
    until: float | None = None
    version: int | None = None
    arm: str | None = None
    status: int | str | None = None
    labelled: bool | None = None
    request_id_prefix: str | None = None
    limit: int = 50

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValidationError(f"limit must be from 1 to {MAX_LIMIT}, got {self.limit}")
        if isinstance(self.status, str) and self.status not in ("ok", "error"):
            raise ValidationError(
                f"status must be an HTTP status code, 'ok' or 'error', got {self.status!r}"
            )
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValidationError(
                f"since ({self.since}) must be before until ({self.until}): the range is empty"
            )

    def keeps(self, payload: Payload, number: int) -> bool:
        """Whether record ``number`` of ``payload`` matches (all but ``labelled``)."""
        ts = payload.ts[number]
        if (self.since is not None and ts < self.since) or (
            self.until is not None and ts >= self.until
        ):
            return False
        if payload.deployments[number] != self.deployment:
            return False
        if self.version is not None and payload.versions[number] != self.version:
            return False
        if self.arm is not None and payload.arms[number] != self.arm:
            return False
        status = payload.statuses[number]
        if self.status == "ok" and status >= 400 or self.status == "error" and status < 400:
            return False
        if isinstance(self.status, int) and status != self.status:
            return False
        prefix = self.request_id_prefix
        return prefix is None or payload.request_ids[number].startswith(prefix)


@dataclass(frozen=True)
class LoggedRequest:
    """One logged record of a request (a shadow's record of it is another), and the labels
    posted for its rows (``{row: label}``)."""

    request_id: str
    ts: float
    deployment: str
    model: str
    version: int
    arm: str
    status: int
    latency_ms: float
    rows: int
    error: str | None
    labels: dict[int, Any] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        """As JSON: the fields, with ``labels`` keyed by row."""
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return {**fields, "labels": {str(row): label for row, label in self.labels.items()}}


@dataclass(frozen=True)
class RequestDetail:
    """One logged record with its rows: ``inputs`` as sent, ``features`` fetched from the
    feature store (for a deployment that fetches some), ``outputs``; each ``{name: [value
    per row]}``, empty where the log kept none (a request that failed before the model
    answered it, or one whose inputs could not be encoded: its ``error`` says so)."""

    request: LoggedRequest
    inputs: dict[str, list[Any]]
    features: dict[str, list[Any]]
    outputs: dict[str, list[Any]]

    def document(self) -> dict[str, Any]:
        return {
            **self.request.document(),
            "inputs": self.inputs,
            "features": self.features,
            "outputs": self.outputs,
        }


@dataclass(frozen=True)
class RequestPage:
    """What ``search_requests`` found: its newest matches, newest first, and
    ``searched_from``: None when every record of the query's range was read, else the time
    from which on every one was (older matches may exist: search on with ``until`` at it)."""

    requests: list[LoggedRequest]
    searched_from: float | None = None


def list_requests(
    log: LabelledLogRepository, query: RequestQuery, *, page: int = 32
) -> list[LoggedRequest]:
    """The ``query.limit`` newest logged requests that match ``query``, newest first."""
    return search_requests(log, query, page=page).requests


def search_requests(
    log: LabelledLogRepository,
    query: RequestQuery,
    *,
    page: int = 32,
    max_records: int | None = None,
) -> RequestPage:
    """``list_requests`` reading at most about ``max_records`` logged records (whole pages
    of ``page`` batches; the first page is always read). A search the budget stopped
    returns only the matches at or after ``searched_from``: an unread batch may hold
    records as new as that, but none newer."""
    start = -_FAR if query.since is None else query.since
    end = _FAR if query.until is None else query.until
    pages = log.batch_pages(
        query.deployment,
        start - BATCH_SPAN_S,
        end,
        last_from=start,
        version=query.version,
        page=page,
        newest_first=True,
    )
    kept: list[tuple[float, str, str, LoggedRequest]] = []  # a min-heap of the newest
    read = 0
    floor = math.inf
    searched_from: float | None = None
    for stored in pages:
        if max_records is not None and read >= max_records and floor < math.inf:
            # Unread batches start at or before the last page's ``floor``, so every record
            # after ``floor + BATCH_SPAN_S`` has been read.
            searched_from = math.nextafter(floor + BATCH_SPAN_S, math.inf)
            kept = [entry for entry in kept if entry[0] >= searched_from]
            break
        floor = math.inf
        found: list[LoggedRequest] = []
        for payload in _decoded(stored):
            if payload.ts:
                floor = min(floor, min(payload.ts))
            read += len(payload)
            oldest = kept[0][0] if len(kept) == query.limit else -math.inf
            found += [
                _record(payload, n)
                for n in range(len(payload))
                if payload.ts[n] >= oldest and query.keeps(payload, n)
            ]
        if query.labelled is not None and found:
            found = _with_labels(log, found)
            found = [r for r in found if bool(r.labels) == query.labelled]
        for record in found:
            entry = (record.ts, record.request_id, record.arm, record)
            if len(kept) < query.limit:
                heapq.heappush(kept, entry)
            elif entry[:3] > kept[0][:3]:
                heapq.heapreplace(kept, entry)
        # Unread batches start at or before ``floor``, so their records end by this time.
        if len(kept) == query.limit and kept[0][0] > floor + BATCH_SPAN_S:
            break
    newest = [entry[3] for entry in sorted(kept, key=lambda e: e[:3], reverse=True)]
    if searched_from is not None and searched_from <= start:
        searched_from = None  # nothing of the range was left unread
    found = newest if query.labelled is not None else _with_labels(log, newest)
    return RequestPage(found, searched_from)


def show_request(
    log: LabelledLogRepository,
    deployment: str,
    request_id: str,
    *,
    features: Collection[str] = (),
) -> list[RequestDetail]:
    """Every logged record of ``request_id`` in ``deployment`` (its answer, then any
    shadow's), in time order; empty if the log holds none. ``features`` names the inputs
    the deployment fetched from the feature store."""
    details = []
    for payload in _decoded(log.request_payloads(deployment, request_id)):
        for number in range(len(payload)):
            if payload.request_ids[number] != request_id:
                continue
            if payload.deployments[number] != deployment:
                continue
            inputs = _lists(payload.inputs(number))
            fetched = {name: inputs.pop(name) for name in list(inputs) if name in features}
            details.append(
                RequestDetail(
                    _record(payload, number), inputs, fetched, _lists(payload.outputs(number))
                )
            )
    details.sort(key=lambda d: (d.request.arm == "shadow", d.request.ts, d.request.arm))
    labelled = _with_labels(log, [d.request for d in details])
    return [
        RequestDetail(request, d.inputs, d.features, d.outputs)
        for request, d in zip(labelled, details, strict=True)
    ]


def _record(payload: Payload, number: int) -> LoggedRequest:
    return LoggedRequest(*payload.record(number))


def _with_labels(log: LabelledLogRepository, records: list[LoggedRequest]) -> list[LoggedRequest]:
    stored = log.request_labels({r.request_id for r in records}) if records else {}
    labels: dict[str, dict[int, Any]] = {}
    for (request_id, row), text in sorted(stored.items()):
        labels.setdefault(request_id, {})[row] = orjson.loads(text)
    return [replace(r, labels=labels.get(r.request_id, {})) for r in records]


def _decoded(stored: Iterable[bytes]) -> list[Payload]:
    payloads = []
    for data in stored:
        with contextlib.suppress(ValueError):  # checked when stored: a bug, not a user error
            payloads.append(Payload(data))
    return payloads


def _lists(columns: Columns | None) -> dict[str, list[Any]]:
    if not columns:
        return {}
    return {
        name: column.tolist() if isinstance(column, np.ndarray) else list(column)
        for name, column in columns.items()
    }
