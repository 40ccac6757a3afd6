"""``SqlRegistryRepository``: the registry's writes on the metadata database (SQLAlchemy).

Writes run here, one ``db.write()`` transaction each; a new version's number is
allocated under ``SELECT ... FOR UPDATE`` on the model's row (PostgreSQL; SQLite's
``BEGIN IMMEDIATE`` already serialises writers). Reads, the writes' read-backs
included, are those of ``registry.sql_reads.SqlCatalogRepository`` (plain SQL
through ``SqlReader``), which this class extends.
"""

from __future__ import annotations

import json

from sqlalchemy import Connection, func, insert, select, update

from modelyard.registry.records import (
    AliasMove,
    VersionDraft,
    alias_not_found,
    model_not_found,
    version_not_found,
)
from modelyard.registry.sql_reads import SqlCatalogRepository
from modelyard.store.database import Database, upsert
from modelyard.store.reader import SqlReader, open_reader
from modelyard.store.schema import (
    alias_history,
    model_aliases,
    model_tags,
    model_version_tags,
    model_versions,
    registered_models,
)


class SqlRegistryRepository(SqlCatalogRepository):
    """The ``RegistryRepository`` of one metadata database (``reader``: its reads)."""

    def __init__(self, db: Database, reader: SqlReader | None = None) -> None:
        super().__init__(reader or open_reader(db.url, db.engine))
        self._db = db

    def add_version(self, name: str, draft: VersionDraft) -> int:
        now = draft.created_at
        with self._db.write() as conn:
            model_id = _lock_or_create_model(conn, name, now)
            latest = conn.execute(
                select(func.max(model_versions.c.version)).where(
                    model_versions.c.model_id == model_id
                )
            ).scalar()
            number = (latest or 0) + 1
            draft.check_number(name, number)
            version_id = conn.execute(
                insert(model_versions)
                .values(
                    model_id=model_id,
                    version=number,
                    flavour=draft.flavour,
                    artifact_digest=draft.artifact_digest,
                    artifact_size=draft.artifact_size,
                    signature=json.dumps(draft.signature.to_dict()),
                    profile_digest=draft.profile_digest,
                    metrics=json.dumps(draft.metrics),
                    lineage=json.dumps(draft.lineage, default=str),
                    run_id=draft.run_id,
                    parent_version=draft.parent_version,
                    description=draft.description,
                    created_at=now,
                    created_by=draft.created_by,
                )
                .returning(model_versions.c.id)
            ).scalar_one()
            if draft.tags:
                conn.execute(
                    insert(model_version_tags),
                    [
                        {"version_id": version_id, "key": k, "value": v}
                        for k, v in draft.tags.items()
                    ],
                )
            conn.execute(
                update(registered_models)
                .where(registered_models.c.id == model_id)
                .values(updated_at=now)
            )
        return number

    def move_alias(
        self,
        name: str,
        alias: str,
        version: int | None,
        actor: str | None,
        reason: str,
        at: float,
    ) -> AliasMove:
        with self._db.write() as conn:
            model_id = conn.execute(
                select(registered_models.c.id)
                .where(registered_models.c.name == name)
                .with_for_update()
            ).scalar()
            if model_id is None:
                raise model_not_found(name)
            if (
                version is not None
                and conn.execute(
                    select(model_versions.c.id).where(
                        model_versions.c.model_id == model_id, model_versions.c.version == version
                    )
                ).scalar()
                is None
            ):
                raise version_not_found(name, version)
            where = (model_aliases.c.model_id == model_id) & (model_aliases.c.alias == alias)
            previous = conn.execute(select(model_aliases.c.version).where(where)).scalar()
            if version is None and previous is None:
                raise alias_not_found(name, alias)
            if previous is not None:
                conn.execute(model_aliases.delete().where(where))
            if version is not None:
                conn.execute(
                    insert(model_aliases).values(
                        model_id=model_id, alias=alias, version=version, updated_at=at
                    )
                )
            conn.execute(
                insert(alias_history).values(
                    model_id=model_id,
                    alias=alias,
                    from_version=previous,
                    to_version=version,
                    actor=actor,
                    reason=reason,
                    at=at,
                )
            )
        return AliasMove(alias, previous, version, actor, reason, at)

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        with self._db.write() as conn:
            model_id = conn.execute(
                select(registered_models.c.id).where(registered_models.c.name == name)
            ).scalar()
            if model_id is None:
                raise model_not_found(name)
            conn.execute(
                model_tags.delete().where(
                    (model_tags.c.model_id == model_id) & (model_tags.c.key == key)
                )
            )
            conn.execute(insert(model_tags).values(model_id=model_id, key=key, value=value))

    def set_description(self, name: str, description: str) -> None:
        with self._db.write() as conn:
            updated = conn.execute(
                update(registered_models)
                .where(registered_models.c.name == name)
                .values(description=description)
            ).rowcount
        if not updated:
            raise model_not_found(name)


def _lock_or_create_model(conn: Connection, name: str, now: float) -> int:
    # Insert-if-absent first: two writers registering a new name at once (PostgreSQL
    # has no table lock like SQLite's BEGIN IMMEDIATE) then both find the one row and
    # queue on its lock, instead of one failing on the unique name.
    conn.execute(
        upsert(conn, registered_models)
        .values(name=name, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    query = select(registered_models.c.id).where(registered_models.c.name == name).with_for_update()
    return int(conn.execute(query).scalar_one())
