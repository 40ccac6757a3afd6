"""Predictions of a time window paired with their labels, joined at query time.

Two ways a label finds its prediction:

* by request: a label for ``(request_id, row)`` pairs with that row of every
  record with that request id (the answering arm and any shadow of it);
* by entity: a label for ``(entity_key, event_time)`` pairs with the latest
  request for that entity at or before ``event_time`` (and at most
  ``entity_horizon_s`` before it). The entity of a row is the value of one
  logged input column, ``entity_field`` (the routing key or a feature such as
  ``customer_id``): the inference log has no entity column of its own.

A row with a request label takes it; otherwise it takes the earliest entity
event that follows it. Nothing limits when a label arrived, so late labels
join. Labels whose prediction was left out by sampling, or purged, pair with
nothing. The result is a ``window.Window`` whose ``labels`` are filled in.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from modelyard.errors import ValidationError
from modelyard.monitoring.inference_log.repository import LabelledLogRepository
from modelyard.monitoring.inference_log.storage import read_window, row_numbers, scan_window
from modelyard.monitoring.window import Window

DAY_S = 86_400.0


def joined(
    log: LabelledLogRepository,
    deployment: str,
    start: float,
    end: float,
    *,
    version: int | None = None,
    entity_field: str | None = None,
    entity_horizon_s: float = 7 * DAY_S,
    newest: int | None = None,
) -> Window:
    """``deployment``'s window ``start <= ts < end`` with ``labels`` filled in (with
    ``newest``, of about the latest that many requests: see ``storage.read_window``).

    ``labels`` is an object array over the rows: the decoded label (number,
    string, bool or outcome dict), None where none joined. With ``version``
    the entity join still sees every version's requests (a later request of
    another version takes an entity's later events), then the window keeps the
    requests of that version only.
    """
    window = read_window(log, deployment, start, end, newest=newest)
    start = window.start
    labels = np.full(window.rows, None, dtype=object)
    _by_request(log, window, labels)
    if entity_field is not None and window.rows:
        _by_entity(log, deployment, start, end, window, entity_field, entity_horizon_s, labels)
    labelled = replace(window, labels=labels)
    return labelled if version is None else labelled.select(window.version == version)


def joined_parts(
    log: LabelledLogRepository, deployment: str, start: float, end: float, *, page: int = 500
) -> Iterator[Window]:
    """``joined``'s window (labels joined by request id; no entity join, which needs the
    whole window's history) part by part, ``page`` stored batches each: see
    ``storage.scan_window``."""
    for part in scan_window(log, deployment, start, end, page=page):
        yield with_request_labels(log, part)


def with_request_labels(log: LabelledLogRepository, window: Window) -> Window:
    """``window`` with the labels sent for its own requests (by request id) filled in; the
    cheap join, for a window already read."""
    labels = np.full(window.rows, None, dtype=object)
    _by_request(log, window, labels)
    return replace(window, labels=labels)


def _by_request(log: LabelledLogRepository, window: Window, labels: npt.NDArray[Any]) -> None:
    if not window.rows:
        return
    stored = log.request_labels(set(window.request_ids.tolist()))
    if not stored:
        return
    request_ids = window.request_ids[window.row_request]
    for position, (request_id, row) in enumerate(
        zip(request_ids.tolist(), row_numbers(window).tolist(), strict=True)
    ):
        label = stored.get((request_id, row))
        if label is not None:
            labels[position] = orjson.loads(label)


def request_outcomes(
    log: LabelledLogRepository, deployment: str, arm: str, version: int, start: float, end: float
) -> list[tuple[str, str | None]]:
    """``(request id, label text or None)`` for each request of ``deployment`` answered by
    ``arm`` and ``version`` with ``start <= ts < end``, once per label of its rows."""
    window = read_window(log, deployment, start, end, version=version)
    pairs = zip(window.request_ids.tolist(), window.arm.tolist(), strict=True)
    ids = [request_id for request_id, answered_by in pairs if answered_by == arm]
    labels: dict[str, list[str]] = defaultdict(list)
    for (request_id, _row), label in log.request_labels(set(ids)).items():
        labels[request_id].append(label)
    outcomes: list[tuple[str, str | None]] = []
    for request_id in dict.fromkeys(ids):
        outcomes += [(request_id, label) for label in labels.get(request_id, [None])]
    return outcomes


def _by_entity(
    log: LabelledLogRepository,
    deployment: str,
    start: float,
    end: float,
    window: Window,
    field: str,
    horizon_s: float,
    labels: npt.NDArray[Any],
) -> None:
    column = window.inputs.get(field)
    if column is None:
        raise ValidationError(
            f"entity_field {field!r} is not among the logged inputs of {deployment!r}; "
            f"logged: {', '.join(window.inputs) or 'none'}"
        )
    request_ids = window.request_ids[window.row_request].tolist()
    ts = window.ts[window.row_request].tolist()
    labelled = [label is not None for label in labels.tolist()]
    rows_of: dict[tuple[str, str], list[int]] = defaultdict(list)
    history: dict[str, set[tuple[float, str]]] = defaultdict(set)
    for position, value in enumerate(column.tolist()):
        key = entity_text(value)
        if key is not None:
            rows_of[(key, request_ids[position])].append(position)
            history[key].add((ts[position], request_ids[position]))
    events = [e for e in log.entity_labels(start, end + horizon_s) if e.entity_key in history]
    late = [e.event_time for e in events if e.event_time >= end]
    if late:  # a request after the window may be the latest before a late event
        for key, stamp, request_id in _requests_after(log, deployment, end, max(late), field):
            if key in history:
                history[key].add((stamp, request_id))
    ordered = {key: sorted(entries) for key, entries in history.items()}
    for event in events:
        entries = ordered[event.entity_key]
        at = bisect.bisect_right(entries, (event.event_time, "\U0010ffff"))
        if not at:
            continue
        stamp, request_id = entries[at - 1]
        if stamp >= end or event.event_time - stamp > horizon_s:
            continue  # it belongs to a later request, or it came too long after
        for position in rows_of.get((event.entity_key, request_id), ()):
            if not labelled[position]:  # a request label, or an earlier event, wins
                labels[position] = orjson.loads(event.label)
                labelled[position] = True


def _requests_after(
    log: LabelledLogRepository, deployment: str, start: float, until: float, field: str
) -> list[tuple[str, float, str]]:
    window = read_window(log, deployment, start, math.nextafter(until, math.inf))
    column = window.inputs.get(field)
    if column is None:
        return []
    request_ids = window.request_ids[window.row_request].tolist()
    ts = window.ts[window.row_request].tolist()
    seen = []
    for position, value in enumerate(column.tolist()):
        key = entity_text(value)
        if key is not None:
            seen.append((key, ts[position], request_ids[position]))
    return seen


def entity_text(value: Any) -> str | None:
    """An entity key as feedback names it: ints (even as floats) without a decimal point."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)
