"""The online store on Redis (``settings.features.online_store = "redis://..."``).

Layout under a key prefix (``modelyard:features:`` by default):

* ``latest:<view>``: a hash, entity key -> ``"<event_time> <values JSON>"``. One hash
  per view, so N keys are one ``HMGET``. The conditional write ("older never
  overwrites") runs in a Lua script: Redis runs a script atomically, so two writers
  cannot interleave between the comparison and the write.
* ``events:<view>:<key>``: a sorted set scored by event time; a member is
  ``<event_id>\\0<values JSON>``, so a read needs nothing else and ties come back in
  event-id order. ``event_ids:<view>:<key>`` (a hash, id -> time) makes a replay add
  nothing even when its values differ, and ``event_keys:<view>`` (a set) lets
  ``trim_events`` find a view's keys without ``SCAN``-ning the whole database. The
  three move together in Lua scripts.
* ``watermarks``: a hash, view -> time.

Times travel as Python's ``repr`` of the float, which Redis and its Lua parse back to
the same double. Reads of many keys are one pipeline: one round trip.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from modelyard.errors import ConfigurationError, StoreError, ValidationError
from modelyard.features.online.encoding import decode_values, encode_values
from modelyard.features.online.store import Event, LatestRow

if TYPE_CHECKING:
    import redis as redis_lib

DEFAULT_PREFIX = "modelyard:features:"
# Rows or events per script call: a script blocks Redis while it runs, so a large
# write is cut into pieces of a few milliseconds each.
_CHUNK = 2000

_PUT_LATEST = """
local written = 0
for i = 1, #ARGV, 3 do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  local newer = true
  if current then
    local sep = string.find(current, ' ', 1, true)
    newer = tonumber(ARGV[i + 1]) >= tonumber(string.sub(current, 1, sep - 1))
  end
  if newer then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1] .. ' ' .. ARGV[i + 2])
    written = written + 1
  end
end
return written
"""

# KEYS: the view's key set, then (sorted set, id hash) per entity key; ARGV: per entity
# key, the key, the number of its events, then (id, time, values) per event.
_ADD_EVENTS = """
local added = 0
local a = 1
for k = 2, #KEYS, 2 do
  local key = ARGV[a]
  local n = tonumber(ARGV[a + 1])
  a = a + 2
  for _ = 1, n do
    if redis.call('HSETNX', KEYS[k + 1], ARGV[a], ARGV[a + 1]) == 1 then
      redis.call('ZADD', KEYS[k], ARGV[a + 1], ARGV[a] .. '\\0' .. ARGV[a + 2])
      added = added + 1
    end
    a = a + 3
  end
  redis.call('SADD', KEYS[1], key)
end
return added
"""

# KEYS: the view's key set, then (sorted set, id hash) per entity key; ARGV[1]: the
# time bound, then the entity keys.
_TRIM_EVENTS = """
local removed = 0
for k = 2, #KEYS, 2 do
  local old = redis.call('ZRANGEBYSCORE', KEYS[k], '-inf', ARGV[1])
  for _, member in ipairs(old) do
    local sep = string.find(member, '\\0', 1, true)
    redis.call('HDEL', KEYS[k + 1], string.sub(member, 1, sep - 1))
  end
  removed = removed + redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', ARGV[1])
  if redis.call('ZCARD', KEYS[k]) == 0 then
    redis.call('DEL', KEYS[k + 1])
    redis.call('SREM', KEYS[1], ARGV[k / 2 + 1])
  end
end
return removed
"""


def _redis() -> Any:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - redis is in the dev extra
        raise ConfigurationError(
            "the Redis online store needs redis-py: pip install 'modelyard[redis]'"
        ) from exc
    return redis


class RedisOnlineStore:
    """``OnlineStore`` on Redis; ``client`` (a ``redis.Redis`` that returns bytes) or ``url``
    says which."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = DEFAULT_PREFIX,
        client: redis_lib.Redis | None = None,
    ) -> None:
        self._errors: Any = _redis().exceptions.RedisError
        self.url = url
        self.prefix = prefix
        if client is None:
            with self._translated("connect"):
                client = _redis().Redis.from_url(url)
        self._client: redis_lib.Redis = client
        self._put_latest = client.register_script(_PUT_LATEST)
        self._add_events = client.register_script(_ADD_EVENTS)
        self._trim_events = client.register_script(_TRIM_EVENTS)

    # -- keys --------------------------------------------------------------------------

    def _latest(self, view: str) -> str:
        return f"{self.prefix}latest:{view}"

    def _events(self, view: str, key: str) -> str:
        return f"{self.prefix}events:{view}:{key}"

    def _event_ids(self, view: str, key: str) -> str:
        return f"{self.prefix}event_ids:{view}:{key}"

    def _event_keys(self, view: str) -> str:
        return f"{self.prefix}event_keys:{view}"

    @contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        try:
            yield
        except self._errors as exc:
            raise StoreError(f"online store {self.url}: {what} failed: {exc}") from exc

    # -- latest rows -------------------------------------------------------------------

    def put_latest(self, view: str, rows: Sequence[tuple[str, float, Mapping[str, Any]]]) -> int:
        written = 0
        with self._translated("put_latest"):
            for start in range(0, len(rows), _CHUNK):
                args: list[Any] = []
                for key, t, values in rows[start : start + _CHUNK]:
                    args += (key, repr(float(t)), encode_values(values))
                written += int(self._put_latest(keys=[self._latest(view)], args=args))
        return written

    def get_latest(self, view: str, keys: Sequence[str]) -> list[LatestRow | None]:
        if not keys:
            return []
        with self._translated("get_latest"):
            found = self._client.hmget(self._latest(view), list(keys))
        return [_latest_row(value) for value in found]

    # -- events ------------------------------------------------------------------------

    def add_events(self, view: str, events: Sequence[Event]) -> int:
        added = 0
        with self._translated("add_events"):
            for start in range(0, len(events), _CHUNK):
                keys, args = self._add_events_call(view, events[start : start + _CHUNK])
                added += int(self._add_events(keys=keys, args=args))
        return added

    def _add_events_call(self, view: str, events: Sequence[Event]) -> tuple[list[str], list[Any]]:
        by_key: dict[str, list[Event]] = {}
        for event in events:
            if "\0" in event.event_id:
                raise ValidationError(
                    f"event id {event.event_id!r} (entity {event.key!r}) contains a NUL character"
                )
            by_key.setdefault(event.key, []).append(event)
        keys = [self._event_keys(view)]
        args: list[Any] = []
        for key, group in by_key.items():
            keys += (self._events(view, key), self._event_ids(view, key))
            args += (key, len(group))
            for event in group:
                args += (event.event_id, repr(float(event.event_time)), encode_values(event.values))
        return keys, args

    def get_events(self, view: str, keys: Sequence[str], since: float) -> list[list[Event]]:
        if not keys:
            return []
        low = _exclusive(since)
        with self._translated("get_events"):
            if len(keys) == 1:
                found = [self._range(self._client, view, keys[0], low)]
            else:
                pipe = self._client.pipeline(transaction=False)
                for key in keys:
                    self._range(pipe, view, key, low)
                found = pipe.execute()
        return [_events(key, members) for key, members in zip(keys, found, strict=True)]

    def _range(self, client: Any, view: str, key: str, low: str) -> Any:
        return client.zrangebyscore(self._events(view, key), low, "+inf", withscores=True)

    def trim_events(self, view: str, before: float) -> int:
        removed = 0
        bound = repr(float(before))
        with self._translated("trim_events"):
            batch: list[str] = []
            for member in self._client.sscan_iter(self._event_keys(view), count=500):
                batch.append(member.decode())
                if len(batch) == 500:
                    removed += self._trim(view, batch, bound)
                    batch = []
            if batch:
                removed += self._trim(view, batch, bound)
        return removed

    def _trim(self, view: str, keys: list[str], bound: str) -> int:
        script_keys = [self._event_keys(view)]
        for key in keys:
            script_keys += (self._events(view, key), self._event_ids(view, key))
        return int(self._trim_events(keys=script_keys, args=[bound, *keys]))

    # -- watermarks --------------------------------------------------------------------

    def watermark(self, view: str) -> float | None:
        with self._translated("watermark"):
            value = self._client.hget(f"{self.prefix}watermarks", view)
        return None if value is None else float(value)

    def set_watermark(self, view: str, at: float) -> None:
        with self._translated("set_watermark"):
            self._client.hset(f"{self.prefix}watermarks", view, repr(float(at)))

    # -- both at once ------------------------------------------------------------------

    def get_latest_and_events(
        self, view: str, keys: Sequence[str], since: float
    ) -> tuple[list[LatestRow | None], list[list[Event]]]:
        """``get_latest`` and ``get_events`` of the same keys in one round trip."""
        if not keys:
            return [], []
        low = _exclusive(since)
        with self._translated("get_latest_and_events"):
            pipe = self._client.pipeline(transaction=False)
            pipe.hmget(self._latest(view), list(keys))
            for key in keys:
                self._range(pipe, view, key, low)
            found = pipe.execute()
        latest = [_latest_row(value) for value in found[0]]
        events = [_events(key, members) for key, members in zip(keys, found[1:], strict=True)]
        return latest, events

    def delete_prefix(self) -> int:
        """Delete every key under this store's prefix (tests and benchmarks clean up)."""
        deleted = 0
        with self._translated("delete_prefix"):
            batch: list[bytes] = []
            for name in self._client.scan_iter(match=f"{self.prefix}*", count=1000):
                batch.append(name)
                if len(batch) == 1000:
                    deleted += int(self._client.delete(*batch))
                    batch = []
            if batch:
                deleted += int(self._client.delete(*batch))
        return deleted

    def close(self) -> None:
        with self._translated("close"):
            self._client.close()


def _exclusive(since: float) -> str:
    since = float(since)
    return "-inf" if since == float("-inf") else f"({since!r}"


def _latest_row(value: bytes | str | None) -> LatestRow | None:
    if value is None:
        return None
    if isinstance(value, str):  # a client made with decode_responses=True
        value = value.encode()
    t, payload = value.split(b" ", 1)
    return LatestRow(float(t), decode_values(payload))


def _events(key: str, members: list[tuple[bytes, float]]) -> list[Event]:
    events = []
    for member, score in members:
        event_id, payload = member.split(b"\0", 1)
        events.append(Event(key, score, event_id.decode(), decode_values(payload)))
    return events
