"""An in-memory ``OnlineStore`` for unit tests: the same rules as the real ones (the
conformance suite runs on it too), in dicts under one lock."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from modelyard.features.online.store import Event, LatestRow


class InMemoryOnlineStore:
    """Latest rows and events per view, keyed as the port says."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, dict[str, LatestRow]] = {}
        self._events: dict[str, dict[str, dict[str, Event]]] = {}
        self._watermarks: dict[str, float] = {}

    def put_latest(self, view: str, rows: Sequence[tuple[str, float, Mapping[str, Any]]]) -> int:
        written = 0
        with self._lock:
            table = self._latest.setdefault(view, {})
            for key, event_time, values in rows:
                current = table.get(key)
                if current is None or current.event_time <= event_time:
                    table[key] = LatestRow(float(event_time), dict(values))
                    written += 1
        return written

    def get_latest(self, view: str, keys: Sequence[str]) -> list[LatestRow | None]:
        with self._lock:
            table = self._latest.get(view, {})
            return [table.get(key) for key in keys]

    def add_events(self, view: str, events: Sequence[Event]) -> int:
        added = 0
        with self._lock:
            table = self._events.setdefault(view, {})
            for event in events:
                stored = table.setdefault(event.key, {})
                if event.event_id not in stored:
                    stored[event.event_id] = event
                    added += 1
        return added

    def get_events(self, view: str, keys: Sequence[str], since: float) -> list[list[Event]]:
        with self._lock:
            table = self._events.get(view, {})
            return [
                sorted(
                    (e for e in table.get(key, {}).values() if e.event_time > since),
                    key=lambda e: (e.event_time, e.event_id),
                )
                for key in keys
            ]

    def trim_events(self, view: str, before: float) -> int:
        removed = 0
        with self._lock:
            for stored in self._events.get(view, {}).values():
                old = [i for i, e in stored.items() if e.event_time <= before]
                for event_id in old:
                    del stored[event_id]
                removed += len(old)
        return removed

    def watermark(self, view: str) -> float | None:
        with self._lock:
            return self._watermarks.get(view)

    def set_watermark(self, view: str, at: float) -> None:
        with self._lock:
            self._watermarks[view] = float(at)

    def close(self) -> None:
        pass
