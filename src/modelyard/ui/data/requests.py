"""What the requests page shows: the inference log searched, and one request in full.

The same calls as ``modelyard requests`` and ``Yard.requests``/``Yard.request``
(``monitoring.inference_log.browse``). A search lists the newest matches first, a page
at a time: the next page is asked for with the cursor of the last row shown. A search
reads at most ``SCAN_RECORDS`` logged records per page (``browse.search_requests``), so a
filter that matches little answers in bounded time with how far back it has looked, and
its cursor carries on from there. A request id is looked up in the request index (one
B-tree read per deployment), never by reading the log.

Query values arrive as text; each bad one is a ``ValidationError`` naming its field.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson

from modelyard.errors import NotFoundError, ValidationError
from modelyard.monitoring.inference_log.browse import (
    LoggedRequest,
    RequestQuery,
    search_requests,
)
from modelyard.ui.context import UiContext

PAGE_LIMIT = 200
DEFAULT_LIMIT = 50
SCAN_RECORDS = 50_000  # logged records a page may read: ~0.1 s of decoding (1-row requests)
_ID_LIMIT = 128  # the request index's key length
_FAR = 1e300  # an open end of a time range, as a number both databases compare
_FIELD_LIMIT = 255
Cursor = tuple[float, str, str]  # (ts, request id, arm) of the last row shown


def search(ui: UiContext, params: Mapping[str, str]) -> dict[str, Any]:
    """The requests page's data for the query string ``params``: ``deployment``, ``id``
    (exact), ``status`` (ok, error or a code), ``version``, ``arm``, ``labelled``
    (true/false), ``since``/``until`` (epoch seconds or ISO 8601; ``until`` exclusive),
    ``limit`` and ``cursor``."""
    deployments = [d.name for d in ui.deployments.list()]
    deployment = _text(params, "deployment")
    request_id = _text(params, "id", _ID_LIMIT)
    if request_id is not None:
        return {
            "deployments": deployments,
            "deployment": deployment,
            "id": request_id,
            "requests": find_request(ui, request_id, deployment, deployments),
            "next": None,
            "searched_from": None,
        }
    if deployment is None:
        return {
            "deployments": deployments,
            "deployment": None,
            "requests": [],
            "next": None,
            "searched_from": None,
        }
    known_deployment(ui, deployment)
    limit = _integer(params, "limit", 1, PAGE_LIMIT) or DEFAULT_LIMIT
    cursor = decode_cursor(params["cursor"]) if params.get("cursor") else None
    query = RequestQuery(
        deployment,
        since=_time(params, "since"),
        until=_time(params, "until"),
        version=_integer(params, "version", 1, 2**31 - 1),
        arm=_text(params, "arm", 64),
        status=_status(params.get("status")),
        labelled=_flag(params, "labelled"),
        limit=limit,
    )
    found, searched_from = _page(ui, query, cursor)
    shown = found[:limit]
    following: str | None = None
    if len(found) > limit:
        last = shown[-1]
        following = encode_cursor((last.ts, last.request_id, last.arm))
    elif searched_from is not None:  # the budget ran out: carry on from where it stopped
        following = encode_cursor((searched_from, "", ""))
    return {
        "deployments": deployments,
        "deployment": deployment,
        "requests": [r.document() for r in shown],
        "next": following,
        "searched_from": searched_from,
    }


def request_detail(ui: UiContext, deployment: str, request_id: str) -> dict[str, Any]:
    """Every logged record of ``request_id`` in ``deployment`` (its answer, then any
    shadow's): inputs, fetched features, outputs, status, error, latency, labels."""
    if len(request_id) > _ID_LIMIT:
        raise ValidationError(f"request id: at most {_ID_LIMIT} characters")
    records = ui.yard.request(deployment, request_id)  # NotFoundError: unknown either
    return {
        "deployment": deployment,
        "request_id": request_id,
        "records": [r.document() for r in records],
    }


def find_request(
    ui: UiContext, request_id: str, deployment: str | None, deployments: list[str]
) -> list[dict[str, Any]]:
    """The records of ``request_id`` (in ``deployment``, or in any deployment), as list
    rows: one index lookup per deployment searched."""
    names = [deployment] if deployment is not None else deployments
    if deployment is not None:
        known_deployment(ui, deployment)
    rows = []
    for name in names:
        try:
            records = ui.yard.request(name, request_id)
        except NotFoundError:
            continue
        rows += [r.request.document() for r in records]
    return rows


def known_deployment(ui: UiContext, name: str) -> None:
    """NotFoundError unless ``name`` is a deployment or a name traffic was logged under."""
    try:
        ui.deployments.get(name)
    except NotFoundError:
        logged = ui.inference_log.batch_pages(name, -_FAR, _FAR, page=1)
        if not any(logged):
            raise NotFoundError(
                f"deployment: no deployment named {name!r}, and no traffic logged for it"
            ) from None


def encode_cursor(cursor: Cursor) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(cursor))).decode().rstrip("=")


def decode_cursor(text: str) -> Cursor:
    """The cursor a previous page gave; ValidationError for anything else."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        ts, request_id, arm = orjson.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise ValidationError(
            "cursor: not a cursor this page gave (start the search again)"
        ) from None
    if not isinstance(ts, int | float) or not math.isfinite(ts):
        raise ValidationError("cursor: not a cursor this page gave (start the search again)")
    if not isinstance(request_id, str) or not isinstance(arm, str):
        raise ValidationError("cursor: not a cursor this page gave (start the search again)")
    return float(ts), request_id, arm


def _page(
    ui: UiContext, query: RequestQuery, cursor: Cursor | None
) -> tuple[list[LoggedRequest], float | None]:
    """Up to ``query.limit + 1`` matches older than ``cursor`` (in the order of (time, id,
    arm), newest first), and where the search stopped if its budget ran out."""
    wanted = query.limit + 1
    if cursor is None:
        page = search_requests(
            ui.inference_log, replace(query, limit=wanted), max_records=SCAN_RECORDS
        )
        return page.requests, page.searched_from
    until = math.nextafter(cursor[0], math.inf)  # ``until`` is exclusive; ties follow
    if query.until is not None:
        until = min(until, query.until)
    if query.since is not None and until <= query.since:
        return [], None
    asked = wanted
    while True:
        page = search_requests(
            ui.inference_log,
            replace(query, until=until, limit=asked),
            max_records=SCAN_RECORDS,
        )
        older = [r for r in page.requests if (r.ts, r.request_id, r.arm) < cursor]
        # Rows at the cursor's very time that were shown already push older ones out of
        # a full answer: ask for more until the answer has room for them.
        if len(older) >= wanted or len(page.requests) < asked or asked >= 10_000:
            return older[:wanted], page.searched_from
        asked = min(10_000, asked * 2)


def _text(params: Mapping[str, str], name: str, limit: int = _FIELD_LIMIT) -> str | None:
    value = params.get(name, "").strip()
    if not value:
        return None
    if len(value) > limit:
        raise ValidationError(f"{name}: at most {limit} characters, got {len(value)}")
    return value


def _integer(params: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    text = params.get(name, "").strip()
    if not text:
        return None
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValidationError(f"{name}: a whole number from {low} to {high}, not {text!r}")
    return int(text)


def _flag(params: Mapping[str, str], name: str) -> bool | None:
    text = params.get(name, "").strip().lower()
    if not text:
        return None
    if text not in ("true", "false"):
        raise ValidationError(f"{name}: true or false, not {text!r}")
    return text == "true"


def _status(text: str | None) -> int | str | None:
    value = (text or "").strip().lower()
    if not value:
        return None
    if value in ("ok", "error"):
        return value
    if value.isdigit() and 100 <= int(value) <= 599:
        return int(value)
    raise ValidationError(f"status: ok, error or an HTTP status code (100-599), not {text!r}")


def _time(params: Mapping[str, str], name: str) -> float | None:
    """Epoch seconds, or ISO 8601 (UTC when it names no offset)."""
    text = params.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(
                f"{name}: epoch seconds or an ISO 8601 time (2026-01-31T12:00:00Z), not {text!r}"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    if not math.isfinite(value):
        raise ValidationError(f"{name}: a finite number of epoch seconds, not {text!r}")
    return value
