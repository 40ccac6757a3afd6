"""``InMemoryDefinitionRepository``: the features' definition port in memory, for tests.

It behaves as ``features.sql`` does (the contract test holds both to it): ``change``
runs under one lock and writes all or nothing, versions are numbered the same way, and
definitions go through JSON as the database's columns keep them.
"""

from __future__ import annotations

import builtins
import json
import threading
from dataclasses import replace
from typing import Any

from modelyard.features.repository import (
    KINDS,
    Decide,
    DefinitionVersion,
    Kind,
    StoredDefinition,
    next_versions,
)

__all__ = ["InMemoryDefinitionRepository"]


class InMemoryDefinitionRepository:
    """A ``DefinitionRepository`` in dicts and lists, safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._current: dict[tuple[Kind, str], StoredDefinition] = {}
        self._history: builtins.list[DefinitionVersion] = []

    def current(self) -> builtins.list[StoredDefinition]:
        with self._lock:
            return sorted(self._current.values(), key=lambda d: (KINDS.index(d.kind), d.name))

    def get(self, kind: Kind, name: str) -> StoredDefinition | None:
        with self._lock:
            return self._current.get((kind, name))

    def history(self, kind: Kind, name: str) -> builtins.list[DefinitionVersion]:
        with self._lock:
            return [v for v in self._history if (v.kind, v.name) == (kind, name)]

    def change(
        self, decide: Decide, *, at: float, actor: str | None
    ) -> builtins.list[DefinitionVersion]:
        with self._lock:
            writes = list(decide(self.current()))
            last = {}
            for entry in self._history:
                last[(entry.kind, entry.name)] = entry.version
            entries = [
                replace(e, definition=_json(e.definition))
                for e in next_versions(writes, self._current, last, at=at, actor=actor)
            ]
            current = dict(self._current)
            for entry in entries:
                key = (entry.kind, entry.name)
                if entry.action == "removed":
                    del current[key]
                    continue
                assert entry.definition is not None
                assert entry.digest is not None
                before = current.get(key)
                current[key] = StoredDefinition(
                    entry.kind,
                    entry.name,
                    entry.version,
                    entry.digest,
                    entry.definition,
                    at if before is None else before.created_at,
                    at,
                    actor,
                )
            self._current = current
            self._history.extend(entries)
            return entries


def _json(definition: dict[str, Any] | None) -> dict[str, Any] | None:
    """The definition as the database gives it back (its JSON, read again)."""
    loaded: dict[str, Any] | None = (
        None if definition is None else json.loads(json.dumps(definition))
    )
    return loaded
