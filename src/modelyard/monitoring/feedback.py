"""Feedback: ground truth or a business outcome attached to predictions, any time later.

An item targets either one row of one request (``request_id`` + ``row``, row 0
by default) or an entity at a time (``entity_key`` + ``event_time``: the label
then belongs to the latest prediction for that entity at or before that time;
see ``feedback_join``). It carries a ``label`` (number, string or bool) or an
``outcome`` object (``{"converted": true, "revenue": 12.5}``).

Posting is idempotent. Each target has one stored label: its ``dedupe_key`` is
the sha256 of the target, unique in the table, and a post is one
``INSERT ... ON CONFLICT (dedupe_key) DO UPDATE ... WHERE label differs`` (in the
SQL adapter of ``inference_log.repository.FeedbackRepository``). The
same label posted three times is stored once and left untouched (not even its
``received_at`` moves); a different label for the same target replaces the old
one (the last post wins: a correction; except clicks naming items, which accumulate:
``inference_log.item_labels``). Keying on the target alone, rather
than target + label, lets the database's unique index enforce "one label per
target" even when two workers post at once, where a delete-then-insert would
race. Labels are joined to predictions at query time by key, with no window on
when they arrived, so a label posted 7 days (or months) late still joins.

A post also says what each label matched (``feedback_outcomes``): ``joined`` (its
request id is in the inference log, one index lookup), ``pending`` (not yet: stored,
and waited for), ``refused`` (not stored: a row the request never had, or a request
answered with an error) or ``deferred`` (an entity label). With ``require_known`` a
label for a request id the log does not hold fails the whole post with
``NotFoundError`` naming it, and nothing is stored.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson

from modelyard.errors import NotFoundError, PayloadTooLargeError, ValidationError
from modelyard.monitoring.feedback_outcomes import (
    DEFAULT_WAIT_S,
    LabelOutcome,
    LabelTarget,
    judge,
)
from modelyard.monitoring.inference_log.item_labels import merge_labels
from modelyard.monitoring.inference_log.repository import LabelledLogRepository, StoredLabel

MAX_ITEMS = 10_000
MAX_LABEL_BYTES = 64 * 1024
_FIELDS = ("request_id", "row", "entity_key", "event_time", "label", "outcome")


@dataclass(frozen=True)
class FeedbackItem:
    """One label for one target: ``request_id`` (+ ``row``) or ``entity_key`` + ``event_time``.

    ``label`` is a bool, number or string, or a dict for a business outcome.
    ``event_time`` is UNIX seconds; with a request id it is kept as information.
    """

    label: Any
    request_id: str | None = None
    row: int = 0
    entity_key: str | None = None
    event_time: float | None = None

    @property
    def dedupe_key(self) -> str:
        """sha256 of the target: one stored label per request row or per entity and time."""
        if self.request_id is not None:
            target = f"request\x00{self.request_id}\x00{self.row}"
        else:
            target = f"entity\x00{self.entity_key}\x00{float(self.event_time or 0.0)!r}"
        return hashlib.sha256(target.encode()).hexdigest()

    @property
    def label_json(self) -> str:
        """The label as stored: canonical JSON (keys sorted), so equal labels compare equal."""
        return orjson.dumps(self.label, option=orjson.OPT_SORT_KEYS).decode()


@dataclass(frozen=True)
class FeedbackResult:
    """What a post did: items ``received``, new labels ``stored``, labels ``replaced``,
    and items that changed nothing (``unchanged``: the same label again); then how many
    labels ``joined``, are ``pending``, were ``refused`` (not stored) or ``deferred``, and
    each label's ``LabelOutcome`` in the order posted."""

    received: int
    stored: int
    replaced: int
    unchanged: int
    joined: int = 0
    pending: int = 0
    refused: int = 0
    deferred: int = 0
    labels: tuple[LabelOutcome, ...] = ()

    # the counts of the JSON answer, in order (its OpenAPI schema lists the same)
    COUNTS: ClassVar[tuple[str, ...]] = (
        "received",
        "stored",
        "replaced",
        "unchanged",
        "joined",
        "pending",
        "refused",
        "deferred",
    )

    def document(self) -> dict[str, Any]:
        """The JSON answer of ``POST /v1/feedback`` (a label's empty fields left out)."""
        counts = {name: getattr(self, name) for name in self.COUNTS}
        labels = [
            {
                key: value
                for key, value in (
                    ("outcome", label.outcome),
                    ("request_id", label.request_id),
                    ("row", None if label.request_id is None else label.row),
                    ("entity_key", label.entity_key),
                    ("reason", label.reason),
                    ("expires_at", label.expires_at),
                )
                if value is not None
            }
            for label in self.labels
        ]
        return {**counts, "labels": labels}


@dataclass(frozen=True)
class FeedbackPost:
    """A parsed feedback body: its items, and whether every request id must be known."""

    items: list[FeedbackItem]
    require_known: bool = False


def parse_feedback_post(body: Any, *, max_items: int = MAX_ITEMS) -> FeedbackPost:
    """A feedback POST body: ``{"labels": [item, ...], "require_known": false}`` or a
    single item (which may carry ``require_known`` too); see ``parse_feedback_body``."""
    if not isinstance(body, Mapping) or "require_known" not in body:
        return FeedbackPost(parse_feedback_body(body, max_items=max_items))
    require = body["require_known"]
    if not isinstance(require, bool):
        raise ValidationError(f"require_known must be true or false, got {_kind(require)}")
    rest = {key: value for key, value in body.items() if key != "require_known"}
    return FeedbackPost(parse_feedback_body(rest, max_items=max_items), require)


def parse_feedback_body(body: Any, *, max_items: int = MAX_ITEMS) -> list[FeedbackItem]:
    """The items of a feedback POST body: ``{"labels": [item, ...]}`` or a single item.

    An item is ``{"request_id": "...", "row": 0, "label": 1}`` or
    ``{"entity_key": "user-7", "event_time": 1718000000.0 | "2024-06-10T06:13:20Z",
    "outcome": {...}}``. Raises ``ValidationError`` naming the field and item.
    """
    if not isinstance(body, Mapping):
        raise ValidationError(f"the body must be a JSON object, got {_kind(body)}")
    if "labels" not in body:
        return validate_items([_item(body, "")])
    extra = sorted(set(body) - {"labels"})
    if extra:
        raise ValidationError(f"unknown field {extra[0]!r} next to 'labels'")
    labels = body["labels"]
    if not isinstance(labels, list) or not labels:
        raise ValidationError(f"'labels' must be a non-empty list of items, got {_kind(labels)}")
    if len(labels) > max_items:
        raise PayloadTooLargeError(
            f"'labels' has {len(labels)} items; at most {max_items} are accepted per request"
        )
    return validate_items([_item(raw, f"labels[{i}].") for i, raw in enumerate(labels)])


def _item(raw: Any, where: str) -> FeedbackItem:
    if not isinstance(raw, Mapping):
        raise ValidationError(f"{where.rstrip('.') or 'item'} must be an object, got {_kind(raw)}")
    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        raise ValidationError(
            f"{where}{unknown[0]} is not a feedback field; known: {', '.join(_FIELDS)}"
        )
    if ("label" in raw) == ("outcome" in raw):
        raise ValidationError(f"{where}label: give exactly one of 'label' and 'outcome'")
    if "outcome" in raw and not isinstance(raw["outcome"], Mapping):
        raise ValidationError(f"{where}outcome must be an object, got {_kind(raw['outcome'])}")
    if "label" in raw and not _is_scalar(raw["label"]):
        raise ValidationError(
            f"{where}label must be a number, string or boolean (use 'outcome' for an object), "
            f"got {_kind(raw['label'])}"
        )
    entity_key: Any = raw.get("entity_key")
    if isinstance(entity_key, int) and not isinstance(entity_key, bool):
        entity_key = str(entity_key)  # numeric ids, as in the logged inputs
    event_time = raw.get("event_time")
    if isinstance(event_time, str):
        event_time = _parse_time(event_time, f"{where}event_time")
    return FeedbackItem(
        label=raw["outcome"] if "outcome" in raw else raw["label"],
        request_id=raw.get("request_id"),
        row=raw.get("row", 0),
        entity_key=entity_key,
        event_time=event_time,
    )


def validate_items(items: Sequence[FeedbackItem]) -> list[FeedbackItem]:
    """Check every item (the Python API and the body parser share this); errors name the item."""
    for index, item in enumerate(items):
        where = f"labels[{index}]."
        if (item.request_id is None) == (item.entity_key is None):
            raise ValidationError(
                f"{where}request_id: give exactly one target, 'request_id' (with an optional "
                "'row') or 'entity_key' (with 'event_time')"
            )
        if item.request_id is not None:
            _check_text(item.request_id, 128, f"{where}request_id")
            if (
                isinstance(item.row, bool)
                or not isinstance(item.row, int)
                or not 0 <= item.row < 2**31
            ):
                raise ValidationError(
                    f"{where}row must be an integer from 0 to 2**31-1, got {item.row!r}"
                )
        else:
            _check_text(item.entity_key, 255, f"{where}entity_key")
            if item.event_time is None:
                raise ValidationError(f"{where}event_time is required with an entity_key")
            if item.row != 0:
                raise ValidationError(f"{where}row applies to request ids, not entity keys")
        if item.event_time is not None and not _is_finite(item.event_time):
            raise ValidationError(
                f"{where}event_time must be UNIX seconds or an ISO 8601 time, "
                f"got {item.event_time!r}"
            )
        _check_label(item.label, f"{where}label")
    return list(items)


class FeedbackStore:
    """Labels in the metadata store's ``feedback`` table, checked against the inference
    log's request index (``SqlInferenceLogRepository(db)`` holds both). A pending label
    is reported with ``expires_at``, ``wait_s`` after it was received."""

    def __init__(self, log: LabelledLogRepository, *, wait_s: float = DEFAULT_WAIT_S) -> None:
        self._log = log
        self.wait_s = wait_s

    def post(
        self,
        items: Sequence[FeedbackItem],
        *,
        received_at: float | None = None,
        require_known: bool = False,
    ) -> FeedbackResult:
        """Store labels idempotently (see the module's docstring); one transaction. Raises
        ``NotFoundError`` with ``require_known`` when a request id is not in the log."""
        validate_items(items)
        now = time.time() if received_at is None else received_at
        ids = {item.request_id for item in items if item.request_id is not None}
        known = self._log.known_requests(ids) if ids else {}
        if require_known:
            _check_known(items, known)
        targets = [LabelTarget(item.request_id, item.row, item.entity_key) for item in items]
        outcomes = judge(targets, known, now, self.wait_s)
        rows: dict[str, StoredLabel] = {}
        for item, outcome in zip(items, outcomes, strict=True):
            if outcome.outcome == "refused":
                continue
            # the same target twice in one post: the later item wins
            rows[item.dedupe_key] = StoredLabel(
                dedupe_key=item.dedupe_key,
                label=item.label_json,
                received_at=now,
                request_id=item.request_id,
                row=item.row,
                entity_key=item.entity_key,
                event_time=None if item.event_time is None else float(item.event_time),
            )
        stored = self._log.put_labels(list(rows.values())) if rows else {}
        new = sum(1 for key in rows if key not in stored)
        replaced = sum(
            1
            for key, row in rows.items()
            if key in stored and stored[key] != merge_labels(stored[key], row.label)
        )
        counted = {name: 0 for name in ("joined", "pending", "refused", "deferred")}
        for outcome in outcomes:
            counted[outcome.outcome] += 1
        accepted = len(items) - counted["refused"]
        return FeedbackResult(
            len(items),
            new,
            replaced,
            accepted - new - replaced,
            labels=tuple(outcomes),
            **counted,
        )

    def post_one(
        self, item: FeedbackItem, *, received_at: float | None = None, require_known: bool = False
    ) -> FeedbackResult:
        return self.post([item], received_at=received_at, require_known=require_known)


def _check_known(items: Sequence[FeedbackItem], known: Mapping[str, object]) -> None:
    unknown = [
        (index, item.request_id)
        for index, item in enumerate(items)
        if item.request_id is not None and item.request_id not in known
    ]
    if unknown:
        index, request_id = unknown[0]
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise NotFoundError(
            f"labels[{index}].request_id: no prediction with request id {request_id!r} in the "
            f"inference log{more}; with require_known every request id must be logged "
            "(the log runs about a second behind the answers); nothing was stored"
        )


def _check_text(value: Any, limit: int, where: str) -> None:
    if not isinstance(value, str) or not value or len(value) > limit or "\x00" in value:
        raise ValidationError(
            f"{where} must be a non-empty string of at most {limit} characters "
            f"without NUL bytes, got {value!r}"
        )


def _check_label(label: Any, where: str) -> None:
    if not (_is_scalar(label) or isinstance(label, Mapping)):
        raise ValidationError(
            f"{where} must be a number, string, boolean or an outcome object, got {_kind(label)}"
        )
    try:
        size = len(orjson.dumps(label, option=orjson.OPT_SORT_KEYS))
    except (orjson.JSONEncodeError, TypeError) as error:
        raise ValidationError(f"{where} is not JSON: {error}") from None
    if size > MAX_LABEL_BYTES:
        raise ValidationError(f"{where} takes {size} bytes as JSON; the limit is {MAX_LABEL_BYTES}")
    if not _all_finite(label):
        raise ValidationError(f"{where} must not contain NaN or infinity")


def _is_scalar(value: Any) -> bool:
    return isinstance(value, bool | str) or _is_finite(value)


def _is_finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _all_finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, Mapping):
        return all(_all_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_all_finite(v) for v in value)
    return True


def _parse_time(text: str, where: str) -> float:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            f"{where} must be UNIX seconds or an ISO 8601 time, got {text!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # a time without a zone is taken as UTC
    return parsed.timestamp()


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return repr(value) if isinstance(value, str | int | float | bool) else type(value).__name__
