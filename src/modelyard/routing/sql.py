"""Deployments, their history and their events in the metadata database.

Writes go through SQLAlchemy Core, one ``db.write()`` transaction per ``change``:
the row is read with ``SELECT ... FOR UPDATE`` (PostgreSQL locks it; SQLite's
``BEGIN IMMEDIATE`` already serialises writers), then the row, its history entry
and its events are written together, or nothing is. ``record`` appends one event
in its own transaction.

Reads (``get``, ``list``, ``revision``, ``revisions``, ``history``, ``events``) are
plain SQL through a ``SqlReader`` (stdlib sqlite3 on the embedded default), so a
serving worker polls ``revisions()`` twice a second for microseconds and reloads
only the deployments whose revision moved.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, insert, select, update

from modelyard.routing.deployment import (
    Deployment,
    DeploymentConfig,
    Event,
    HistoryEntry,
    Rollout,
    dumps,
)
from modelyard.routing.repository import Revision
from modelyard.store.database import Database
from modelyard.store.reader import SqlReader, open_reader
from modelyard.store.schema import deployment_history, deployments, events

__all__ = ["SqlDeploymentRepository"]

_SELECT = "SELECT name, model, config, rollout, revision, created_at, updated_at FROM deployments"


class SqlDeploymentRepository:
    """The ``DeploymentRepository`` of the metadata database ``db``."""

    def __init__(self, db: Database, *, reader: SqlReader | None = None) -> None:
        self._db = db
        self._reader = reader or open_reader(db.url, db.engine)

    # -- reads ------------------------------------------------------------------------

    def get(self, name: str) -> Deployment | None:
        rows = self._reader.fetch_all(_SELECT + " WHERE name = :name", {"name": name})
        return _deployment(rows[0]) if rows else None

    def list(self) -> builtins.list[Deployment]:
        return [_deployment(row) for row in self._reader.fetch_all(_SELECT + " ORDER BY name", {})]

    def revision(self, name: str) -> int | None:
        sql = "SELECT revision FROM deployments WHERE name = :name"
        rows = self._reader.fetch_all(sql, {"name": name})
        return int(rows[0][0]) if rows else None

    def revisions(self) -> dict[str, int]:
        rows = self._reader.fetch_all("SELECT name, revision FROM deployments", {})
        return {str(name): int(revision) for name, revision in rows}

    def history(self, name: str) -> builtins.list[HistoryEntry]:
        sql = (
            "SELECT revision, at, actor, reason, config FROM deployment_history "
            "WHERE deployment = :name ORDER BY revision"
        )
        return [
            HistoryEntry(int(r), at, actor, reason, DeploymentConfig.from_dict(json.loads(c)))
            for r, at, actor, reason, c in self._reader.fetch_all(sql, {"name": name})
        ]

    def events(self, subject: str, kind_prefix: str = "", limit: int = 100) -> builtins.list[Event]:
        sql = (
            "SELECT at, kind, subject, reason, payload, actor FROM events "
            "WHERE subject = :name AND kind LIKE :kind ORDER BY id DESC LIMIT :limit"
        )
        rows = self._reader.fetch_all(
            sql, {"name": subject, "kind": kind_prefix + "%", "limit": limit}
        )
        return [
            Event(at, k, s, reason, json.loads(p), actor) for at, k, s, reason, p, actor in rows
        ]

    # -- writes -----------------------------------------------------------------------

    def change(
        self, name: str, fn: Callable[[Deployment | None], Revision | None]
    ) -> Deployment | None:
        with self._db.write() as conn:
            row = conn.execute(
                select(deployments).where(deployments.c.name == name).with_for_update()
            ).first()
            current = None if row is None else _deployment(tuple(row))
            revision = fn(current)
            if revision is None:
                return current
            new = revision.deployment
            if new.name != name:
                raise ValueError(f"a change of deployment {name!r} returned {new.name!r}")
            values = {
                "config": dumps(new.config.to_dict()),
                "rollout": None if new.rollout is None else dumps(new.rollout.to_dict()),
                "revision": new.revision,
                "updated_at": new.updated_at,
            }
            if current is None:
                conn.execute(
                    insert(deployments).values(
                        name=name, model=new.config.model, created_at=new.created_at, **values
                    )
                )
            else:
                conn.execute(update(deployments).where(deployments.c.name == name).values(values))
            conn.execute(
                insert(deployment_history).values(
                    deployment=name,
                    revision=new.revision,
                    at=new.updated_at,
                    actor=revision.actor,
                    reason=revision.reason,
                    config=values["config"],
                )
            )
            for event in revision.events:
                _insert_event(conn, event)
        return new

    def record(self, event: Event) -> None:
        with self._db.write() as conn:
            _insert_event(conn, event)


def _deployment(row: Sequence[Any]) -> Deployment:
    name, _model, config, rollout, revision, created_at, updated_at = row
    return Deployment(
        name,
        DeploymentConfig.from_dict(json.loads(config)),
        None if rollout is None else Rollout.from_dict(json.loads(rollout)),
        int(revision),
        float(created_at),
        float(updated_at),
    )


def _insert_event(conn: Connection, event: Event) -> None:
    conn.execute(
        insert(events).values(
            at=event.at,
            kind=event.kind,
            subject=event.subject,
            reason=event.reason,
            payload=dumps(event.payload),
            actor=event.actor,
        )
    )
