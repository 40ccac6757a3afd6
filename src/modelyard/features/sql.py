"""Feature definitions and their versions in the metadata database.

``change`` is one ``db.write()`` transaction: on PostgreSQL it first locks
``feature_definitions`` in EXCLUSIVE mode (plain reads go on; a second apply waits),
on SQLite ``BEGIN IMMEDIATE`` already serialises writers; then it reads the current
definitions, lets the caller decide, and writes the rows and history entries, or
nothing. The unique ``(kind, name, version, action)`` of the history is the backstop.
"""

from __future__ import annotations

import builtins
import json
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, text, update

from modelyard.features.repository import (
    KINDS,
    Decide,
    DefinitionVersion,
    Kind,
    StoredDefinition,
    next_versions,
)
from modelyard.store.database import Database
from modelyard.store.schema import feature_definition_versions as versions
from modelyard.store.schema import feature_definitions as definitions

__all__ = ["SqlDefinitionRepository"]


class SqlDefinitionRepository:
    """The ``DefinitionRepository`` of the metadata database ``db``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def current(self) -> builtins.list[StoredDefinition]:
        with self._db.read() as conn:
            return _current(conn)

    def get(self, kind: Kind, name: str) -> StoredDefinition | None:
        query = select(definitions).where(definitions.c.kind == kind, definitions.c.name == name)
        with self._db.read() as conn:
            row = conn.execute(query).first()
        return None if row is None else _stored(row)

    def history(self, kind: Kind, name: str) -> builtins.list[DefinitionVersion]:
        query = (
            select(versions)
            .where(versions.c.kind == kind, versions.c.name == name)
            .order_by(versions.c.id)
        )
        with self._db.read() as conn:
            return [_version(row) for row in conn.execute(query)]

    def change(
        self, decide: Decide, *, at: float, actor: str | None
    ) -> builtins.list[DefinitionVersion]:
        with self._db.write() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("LOCK TABLE feature_definitions IN EXCLUSIVE MODE"))
            stored = _current(conn)
            writes = list(decide(stored))
            if not writes:
                return []
            last_query = select(versions.c.kind, versions.c.name, func.max(versions.c.version))
            last = {
                (kind, name): int(version)
                for kind, name, version in conn.execute(
                    last_query.group_by(versions.c.kind, versions.c.name)
                )
            }
            current = {(d.kind, d.name): d for d in stored}
            entries = next_versions(writes, current, last, at=at, actor=actor)
            for entry in entries:
                _write(conn, entry, current.get((entry.kind, entry.name)))
            conn.execute(insert(versions), [_history_row(entry) for entry in entries])
        # as a read gives them back: the definitions through their JSON
        return [
            replace(
                e, definition=None if e.definition is None else json.loads(json.dumps(e.definition))
            )
            for e in entries
        ]


def _current(conn: Connection) -> builtins.list[StoredDefinition]:
    found = [_stored(row) for row in conn.execute(select(definitions))]
    return sorted(found, key=lambda d: (KINDS.index(d.kind), d.name))


def _write(conn: Connection, entry: DefinitionVersion, before: StoredDefinition | None) -> None:
    where = (definitions.c.kind == entry.kind, definitions.c.name == entry.name)
    if entry.action == "removed":
        conn.execute(delete(definitions).where(*where))
        return
    values = {
        "version": entry.version,
        "digest": entry.digest,
        "definition": json.dumps(entry.definition),
        "updated_at": entry.at,
        "updated_by": entry.actor,
    }
    if before is None:
        conn.execute(
            insert(definitions).values(
                kind=entry.kind, name=entry.name, created_at=entry.at, **values
            )
        )
    else:
        conn.execute(update(definitions).where(*where).values(values))


def _history_row(entry: DefinitionVersion) -> dict[str, Any]:
    return {
        "kind": entry.kind,
        "name": entry.name,
        "version": entry.version,
        "action": entry.action,
        "digest": entry.digest,
        "definition": None if entry.definition is None else json.dumps(entry.definition),
        "summary": entry.summary,
        "at": entry.at,
        "actor": entry.actor,
    }


def _stored(row: Any) -> StoredDefinition:
    return StoredDefinition(
        row.kind,
        row.name,
        int(row.version),
        row.digest,
        json.loads(row.definition),
        float(row.created_at),
        float(row.updated_at),
        row.updated_by,
    )


def _version(row: Any) -> DefinitionVersion:
    return DefinitionVersion(
        row.kind,
        row.name,
        int(row.version),
        row.action,
        row.digest,
        None if row.definition is None else json.loads(row.definition),
        row.summary,
        float(row.at),
        row.actor,
    )
