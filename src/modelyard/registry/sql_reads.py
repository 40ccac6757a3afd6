"""``SqlCatalogRepository``: the registry's reads as plain SQL through ``SqlReader``.

Every read of the registry goes this way, writes included when they read back
what they wrote (``registry.sql`` builds on this class). This module never imports
SQLAlchemy: on the embedded default ``SqlReader`` is stdlib sqlite3, so that a
fresh process resolves ``fraud@champion`` in ~20 us instead of ~350 us and skips
the ~0.3 s import (``load_model``'s fast path). On PostgreSQL the same text runs
through SQLAlchemy's ``text()``.
"""

from __future__ import annotations

import json
from typing import Any

from modelyard.registry.records import AliasMove, ModelVersion, RegisteredModel
from modelyard.registry.refs import ModelRef
from modelyard.registry.signature import Signature
from modelyard.store.reader import SqlReader

_MODEL = "SELECT id, name, description, created_at, updated_at FROM registered_models"
_RESOLVE_VERSION = """
SELECT v.version FROM model_versions v JOIN registered_models m ON m.id = v.model_id
WHERE m.name = :name AND v.version = :version"""
_RESOLVE_ALIAS = """
SELECT a.version FROM model_aliases a JOIN registered_models m ON m.id = a.model_id
WHERE m.name = :name AND a.alias = :alias"""
_RESOLVE_LATEST = """
SELECT MAX(v.version) FROM model_versions v JOIN registered_models m ON m.id = v.model_id
WHERE m.name = :name"""
_VERSIONS = """
SELECT v.id, v.model_id, v.version, v.flavour, v.artifact_digest, v.artifact_size, v.signature,
       v.profile_digest, v.metrics, v.lineage, v.run_id, v.parent_version, v.description,
       v.created_at, v.created_by
FROM model_versions v JOIN registered_models m ON m.id = v.model_id
WHERE m.name = :name AND v.version < :before ORDER BY v.version DESC LIMIT :limit"""
_VERSION_TAGS = """
SELECT v.version, t.key, t.value
FROM model_version_tags t JOIN model_versions v ON v.id = t.version_id
WHERE v.model_id = :id AND v.version BETWEEN :low AND :high"""
_ALIASES_BETWEEN = """
SELECT alias, version FROM model_aliases WHERE model_id = :id AND version BETWEEN :low AND :high
ORDER BY alias"""
_NO_BOUND = 2**62
_ALIAS_HISTORY = """
SELECT h.alias, h.from_version, h.to_version, h.actor, h.reason, h.at
FROM alias_history h JOIN registered_models m ON m.id = h.model_id WHERE m.name = :name"""


class SqlCatalogRepository:
    """The ``CatalogRepository`` of one metadata database, read through ``reader``."""

    def __init__(self, reader: SqlReader) -> None:
        self._reader = reader

    def _rows(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        return self._reader.fetch_all(sql, params)

    def list_models(self) -> list[RegisteredModel]:
        return [self._model(row) for row in self._rows(_MODEL + " ORDER BY name")]

    def models(self, *, after: str | None, limit: int) -> list[RegisteredModel]:
        # A range of the unique index on name: page 100 costs what page 1 does.
        sql = _MODEL + " WHERE name > :after ORDER BY name LIMIT :limit"
        return [self._model(row) for row in self._rows(sql, after=after or "", limit=limit)]

    def find_model(self, name: str) -> RegisteredModel | None:
        rows = self._rows(_MODEL + " WHERE name = :name", name=name)
        return self._model(rows[0]) if rows else None

    def _model(self, row: tuple[Any, ...]) -> RegisteredModel:
        model_id = row[0]
        aliases = self._rows(
            "SELECT alias, version FROM model_aliases WHERE model_id = :id ORDER BY alias",
            id=model_id,
        )
        tags = self._rows("SELECT key, value FROM model_tags WHERE model_id = :id", id=model_id)
        latest = self._rows(
            "SELECT MAX(version) FROM model_versions WHERE model_id = :id", id=model_id
        )
        return RegisteredModel(
            name=row[1],
            description=row[2],
            created_at=row[3],
            updated_at=row[4],
            latest_version=latest[0][0],
            aliases=dict(aliases),
            tags=dict(tags),
        )

    def resolve(self, ref: ModelRef) -> int | None:
        if ref.version is not None:
            rows = self._rows(_RESOLVE_VERSION, name=ref.name, version=ref.version)
        elif ref.alias is not None:
            rows = self._rows(_RESOLVE_ALIAS, name=ref.name, alias=ref.alias)
        else:
            rows = self._rows(_RESOLVE_LATEST, name=ref.name)
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def find_version(self, name: str, version: int) -> ModelVersion | None:
        if not 1 <= version < _NO_BOUND:  # beyond any stored number (and SQLite's integers)
            return None
        found = self.versions(name, limit=1, before=version + 1)
        return found[0] if found and found[0].version == version else None

    def versions(self, name: str, *, limit: int | None, before: int | None) -> list[ModelVersion]:
        # Three queries a page, each a range of the (model_id, version) index: the
        # versions, then the tags and aliases of the numbers the page spans.
        rows = self._rows(
            _VERSIONS,
            name=name,
            before=_NO_BOUND if before is None else before,
            limit=_NO_BOUND if limit is None else limit,
        )
        if not rows:
            return []
        model_id, low, high = rows[0][1], rows[-1][2], rows[0][2]
        tags: dict[int, dict[str, str]] = {}
        for number, key, value in self._rows(_VERSION_TAGS, id=model_id, low=low, high=high):
            tags.setdefault(number, {})[key] = value
        aliases: dict[int, list[str]] = {}
        for alias, number in self._rows(_ALIASES_BETWEEN, id=model_id, low=low, high=high):
            aliases.setdefault(number, []).append(alias)
        return [_version(name, row, tags, aliases) for row in rows]

    def alias_history(self, name: str, alias: str | None) -> list[AliasMove]:
        sql = _ALIAS_HISTORY if alias is None else _ALIAS_HISTORY + " AND h.alias = :alias"
        rows = self._rows(sql + " ORDER BY h.id", name=name, alias=alias)
        return [AliasMove(*row) for row in rows]


def _version(
    name: str,
    row: tuple[Any, ...],
    tags: dict[int, dict[str, str]],
    aliases: dict[int, list[str]],
) -> ModelVersion:
    (_, _, number, flavour, digest, size, signature, profile, metrics, lineage,
     run_id, parent, description, created_at, created_by) = row  # fmt: skip
    return ModelVersion(
        model=name,
        version=number,
        flavour=flavour,
        artifact_digest=digest,
        artifact_size=size,
        signature=Signature.from_dict(json.loads(signature)),
        profile_digest=profile,
        metrics=json.loads(metrics),
        lineage=json.loads(lineage),
        run_id=run_id,
        parent_version=parent,
        description=description,
        created_at=created_at,
        created_by=created_by,
        tags=tags.get(number, {}),
        aliases=tuple(aliases.get(number, ())),
    )
