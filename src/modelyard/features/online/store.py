"""The online store's port: per view and entity key, the latest row of its plain features
and the recent events of its aggregations.

Keys are strings (an integer key is stored as its decimal text). Times are epoch
seconds. Two rules every adapter keeps, which the conformance suite checks:

* ``put_latest`` never replaces a row with one whose ``event_time`` is older (an equal
  time replaces: a re-run of the same data is idempotent).
* ``add_events`` is idempotent per ``(view, key, event_id)``: a replayed push or a
  redelivered stream message adds nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol


class LatestRow(NamedTuple):
    """One entity's latest plain features of a view."""

    event_time: float
    values: dict[str, Any]


class Event(NamedTuple):
    """One event of an aggregated view, as stored online."""

    key: str
    event_time: float
    event_id: str
    values: Mapping[str, Any]


class OnlineStore(Protocol):
    """Where serving reads features (SQLite by default, Redis when configured)."""

    def put_latest(self, view: str, rows: Sequence[tuple[str, float, Mapping[str, Any]]]) -> int:
        """Store each ``(key, event_time, values)`` unless a newer row is stored for the key;
        the number of rows that were written."""
        ...

    def get_latest(self, view: str, keys: Sequence[str]) -> list[LatestRow | None]:
        """Each key's latest row (None where there is none), in one round trip."""
        ...

    def add_events(self, view: str, events: Sequence[Event]) -> int:
        """Append events (idempotent by event id); the number that were new."""
        ...

    def get_events(self, view: str, keys: Sequence[str], since: float) -> list[list[Event]]:
        """Each key's events with ``event_time > since``, oldest first, in one round trip."""
        ...

    def trim_events(self, view: str, before: float) -> int:
        """Forget events with ``event_time <= before``; the number removed."""
        ...

    def watermark(self, view: str) -> float | None:
        """How far materialization of ``view`` has read its source (None: never)."""
        ...

    def set_watermark(self, view: str, at: float) -> None: ...

    def close(self) -> None: ...
