"""A Redis Streams consumer that pushes a stream's messages to the feature store.

It reads with a consumer group (``XREADGROUP``), so several consumers share a stream
and each message goes to one of them; a message is acknowledged (``XACK``) only after
``push`` has written it, so a consumer that dies between reading and writing leaves
it pending, and another one takes it over once it has been idle ``claim_idle_ms``
(``XAUTOCLAIM``); a consumer restarted under its own name first re-reads what it had
been given. Writing a message twice adds nothing: its event id is its Redis message id
(unless it carries an ``event_id``), and pushes are idempotent by event id.

A message is either one field, ``data`` (or ``event``), holding a JSON object, or one
field per column with the values as text (``amount=12.5``), read by the stream's
declared types. A message that cannot be an event (bad JSON, a wrong type, a missing
column) is moved to ``<stream key>:dead`` with the reason and acknowledged, so one bad
message never blocks the ones behind it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from modelyard.errors import ConfigurationError, ModelyardError, StoreError, ValidationError
from modelyard.features.definitions import Dtype, FeatureView, StreamSource
from modelyard.features.events import EVENT_ID
from modelyard.features.online.store import OnlineStore
from modelyard.features.push import PushResult, check_events, push

if TYPE_CHECKING:
    import redis as redis_lib

log = logging.getLogger(__name__)

JSON_FIELDS = (b"data", b"event")
_TRUE = {"true", "1", "yes", "t"}
_FALSE = {"false", "0", "no", "f"}


def decode_message(
    message_id: str,
    fields: Mapping[bytes, bytes],
    types: Mapping[str, Dtype],
    event_time: str = "event_time",
) -> dict[str, Any]:
    """One message as an event (a dict of columns): the JSON of its ``data`` field, or its
    fields read as ``types`` says, ``event_time`` as epoch seconds if it is a number
    (else as an ISO-8601 text), anything undeclared as text (the push check then names
    it). Its event id is ``message_id`` unless it carries one."""
    if len(fields) == 1 and next(iter(fields)) in JSON_FIELDS:
        try:
            event = orjson.loads(next(iter(fields.values())))
        except orjson.JSONDecodeError as exc:
            raise ValidationError(f"message {message_id}: its data is not JSON: {exc}") from exc
        if not isinstance(event, dict):
            raise ValidationError(
                f"message {message_id}: its data must be a JSON object, got {type(event).__name__}"
            )
    else:
        event = {}
        for raw_name, raw_value in fields.items():
            name = raw_name.decode(errors="replace")
            text = raw_value.decode(errors="replace")
            if name == event_time:
                event[name] = _time_value(text)
            else:
                event[name] = _text_value(text, types.get(name), name)
    event.setdefault(EVENT_ID, message_id)
    return event


def _time_value(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def _text_value(text: str, dtype: Dtype | None, name: str) -> Any:
    if dtype is None or dtype == "string":
        return text
    if text == "":
        return None
    try:
        if dtype == "int64":
            return int(text)
        if dtype in ("float64", "float32"):
            return float(text)
    except ValueError:
        raise ValidationError(f"field {name!r} ({dtype}) cannot be {text!r}") from None
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValidationError(f"field {name!r} (bool) must be true or false, got {text!r}")


@dataclass
class ConsumerStats:
    """What a consumer has done since it started."""

    messages: int = 0
    accepted: int = 0
    duplicates: int = 0
    too_late: int = 0
    dead: int = 0
    claimed: int = 0
    failures: int = 0  # polls whose push failed (the messages stay pending)
    late_ids: list[str] = field(default_factory=list)  # the last too-late event ids

    def add(self, other: ConsumerStats) -> None:
        for name in ("messages", "accepted", "duplicates", "too_late", "dead", "claimed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.late_ids = (self.late_ids + other.late_ids)[-100:]


class StreamConsumer:
    """Feeds ``stream`` (a ``StreamSource`` some of ``views`` read) from the Redis stream
    ``key`` as consumer ``consumer`` of group ``group``."""

    def __init__(
        self,
        client: redis_lib.Redis,
        *,
        key: str,
        group: str,
        consumer: str,
        stream: StreamSource | str,
        views: Mapping[str, FeatureView] | Iterable[FeatureView],
        store: OnlineStore,
        offline_dir: Path,
        allowed_lateness_s: float,
        clock: Callable[[], float] = time.time,
        batch_size: int = 1000,
        block_ms: int = 1000,  # how long run() waits for new messages in one read
        claim_idle_ms: int | None = 60_000,  # None: never take over others' messages
        start_id: str = "0",
    ) -> None:
        self._client = client
        self.key = key
        self.group = group
        self.consumer = consumer
        self.dead_key = f"{key}:dead"
        self._views = list(views.values()) if isinstance(views, Mapping) else list(views)
        self._stream = stream
        self._store = store
        self._offline_dir = offline_dir
        self._lateness = allowed_lateness_s
        self._clock = clock
        self._batch_size = batch_size
        self._block_ms = block_ms
        self._claim_idle_ms = claim_idle_ms
        self._claim_cursor = "0-0"
        self._own_pending = True  # re-read what this consumer was given before a restart
        self.stats = ConsumerStats()
        schema = check_events(stream, self._views, [])
        self._types: dict[str, Dtype] = {f.name: f.dtype for f in schema.stream.fields}
        self._types.setdefault(schema.key_column, schema.key_dtype)
        self._event_time = schema.stream.event_time
        self._errors: Any = _redis_errors()
        self._ensure_group(start_id)

    def _ensure_group(self, start_id: str) -> None:
        try:
            self._client.xgroup_create(self.key, self.group, id=start_id, mkstream=True)
        except self._errors as exc:
            if "BUSYGROUP" not in str(exc):  # the group exists already: fine
                raise StoreError(f"stream {self.key!r}: cannot create group: {exc}") from exc

    # -- one poll -----------------------------------------------------------------------

    def poll_once(self, block_ms: int | None = 0) -> ConsumerStats:
        """Read a batch (this consumer's own pending messages first, then messages idle
        too long at a dead consumer, then new ones, waiting up to ``block_ms``; None
        waits as configured), push it, acknowledge it; what it did."""
        try:
            messages, claimed = self._read(self._block_ms if block_ms is None else block_ms)
        except self._errors as exc:
            raise StoreError(f"stream {self.key!r}: read failed: {exc}") from exc
        done = ConsumerStats(messages=len(messages), claimed=claimed)
        if not messages:
            return done
        try:
            self._apply(messages, done)
        except ModelyardError:
            # nothing acknowledged: the messages stay pending and are read again
            self._own_pending = True
            self.stats.failures += 1
            raise
        self.stats.add(done)
        return done

    def _read(self, block_ms: int) -> tuple[list[tuple[str, dict[bytes, bytes]]], int]:
        if self._own_pending:
            own = self._group_read("0", None)
            if own:
                return own, 0
            self._own_pending = False
        claimed: list[tuple[str, dict[bytes, bytes]]] = []
        if self._claim_idle_ms is not None:
            cursor, entries, *_ = self._client.xautoclaim(
                self.key,
                self.group,
                self.consumer,
                self._claim_idle_ms,
                self._claim_cursor,
                count=self._batch_size,
            )
            self._claim_cursor = _text(cursor)
            # a claimed entry deleted from the stream meanwhile comes back without fields
            claimed = [(_text(i), dict(f)) for i, f in entries if f is not None]
        if claimed:
            return claimed, len(claimed)
        return self._group_read(">", block_ms or None), 0

    def _group_read(self, start: str, block_ms: int | None) -> list[tuple[str, dict[bytes, bytes]]]:
        found: Any = self._client.xreadgroup(
            self.group, self.consumer, {self.key: start}, count=self._batch_size, block=block_ms
        )
        if not found:
            return []
        entries = found[0][1]  # one stream asked: [[key, [(id, fields), ...]]]
        return [(_text(i), dict(f)) for i, f in entries if f]

    def _apply(self, messages: list[tuple[str, dict[bytes, bytes]]], done: ConsumerStats) -> None:
        events: list[dict[str, Any]] = []
        ids: list[str] = []
        dead: list[tuple[str, dict[bytes, bytes], str]] = []
        for message_id, fields in messages:
            try:
                events.append(decode_message(message_id, fields, self._types, self._event_time))
                ids.append(message_id)
            except ValidationError as exc:
                dead.append((message_id, fields, exc.message))
        try:
            result = self._push(events)
        except ValidationError:  # push checks the batch before writing any of it
            events, ids = self._sort_out(events, ids, messages, dead)
            result = self._push(events)
        done.accepted = result.accepted
        done.duplicates = len(result.duplicates)
        done.too_late = len(result.too_late)
        done.late_ids = [late.event_id for late in result.too_late]
        done.dead = len(dead)
        if result.too_late:
            log.warning(
                "stream %s: %d event(s) too late to apply: %s",
                self.key,
                len(result.too_late),
                done.late_ids[:10],
            )
        try:
            pipe = self._client.pipeline(transaction=True)
            for message_id, fields, reason in dead:
                letter: dict[Any, Any] = {**fields, b"_id": message_id, b"_error": reason}
                pipe.xadd(self.dead_key, letter)
            pipe.xack(self.key, self.group, *[m for m, _ in messages])
            pipe.execute()
        except self._errors as exc:
            # written but not acknowledged: redelivered later, and absorbed as duplicates
            raise StoreError(f"stream {self.key!r}: acknowledging failed: {exc}") from exc

    def _push(self, events: list[dict[str, Any]]) -> PushResult:
        return push(
            self._stream,
            self._views,
            events,
            store=self._store,
            offline_dir=self._offline_dir,
            now=self._clock(),
            allowed_lateness_s=self._lateness,
        )

    def _sort_out(
        self,
        events: list[dict[str, Any]],
        ids: list[str],
        messages: list[tuple[str, dict[bytes, bytes]]],
        dead: list[tuple[str, dict[bytes, bytes], str]],
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """The batch was refused: check each event alone; the bad ones go to ``dead``."""
        fields_of = dict(messages)
        good_events, good_ids = [], []
        for event, message_id in zip(events, ids, strict=True):
            try:
                check_events(self._stream, self._views, [event])
            except ValidationError as exc:
                dead.append((message_id, fields_of[message_id], exc.message))
                continue
            good_events.append(event)
            good_ids.append(message_id)
        return good_events, good_ids

    # -- the loop -----------------------------------------------------------------------

    def run(self, stop: threading.Event, *, retry_s: float = 1.0) -> None:
        """Poll until ``stop`` is set; a failed poll (Redis or the online store away) is
        logged and retried after ``retry_s``, its messages still pending."""
        while not stop.is_set():
            try:
                self.poll_once(block_ms=None)
            except ModelyardError as exc:
                log.warning(
                    "stream %s: poll failed, retrying in %.1f s: %s", self.key, retry_s, exc
                )
                stop.wait(retry_s)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _redis_errors() -> Any:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - redis is in the dev extra
        raise ConfigurationError(
            "the Redis Streams consumer needs redis-py: pip install 'modelyard[redis]'"
        ) from exc
    return redis.RedisError
