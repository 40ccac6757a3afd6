"""``InMemoryRegistryRepository``: the registry's ports in memory, for tests without a database.

It behaves as the SQL adapters do (the contract test runs the same assertions on
both): versions are numbered from 1 under one lock, a refused version leaves
nothing behind, JSON fields read back as JSON, and alias moves are recorded in
order. Unlike the database it cannot check that a version's ``run_id`` names a run.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field, replace
from typing import Any

from modelyard.registry.records import (
    AliasMove,
    ModelVersion,
    RegisteredModel,
    VersionDraft,
    alias_not_found,
    model_not_found,
    version_not_found,
)
from modelyard.registry.refs import ModelRef
from modelyard.registry.signature import Signature


@dataclass
class _Model:
    name: str
    created_at: float
    updated_at: float
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    versions: list[ModelVersion] = field(default_factory=list)  # versions[n - 1] is n
    history: list[AliasMove] = field(default_factory=list)

    def read(self) -> RegisteredModel:
        return RegisteredModel(
            name=self.name,
            description=self.description,
            created_at=self.created_at,
            updated_at=self.updated_at,
            latest_version=len(self.versions) or None,
            aliases=dict(sorted(self.aliases.items())),
            tags=dict(self.tags),
        )

    def version(self, number: int) -> ModelVersion | None:
        if not 1 <= number <= len(self.versions):
            return None
        aliases = tuple(sorted(a for a, v in self.aliases.items() if v == number))
        found = self.versions[number - 1]
        return replace(found, tags=dict(found.tags), aliases=aliases)


class InMemoryRegistryRepository:
    """A ``RegistryRepository`` (and so a ``CatalogRepository``) over a dict of models."""

    def __init__(self) -> None:
        self._models: dict[str, _Model] = {}
        self._lock = threading.Lock()

    # -- reading -----------------------------------------------------------------

    def list_models(self) -> list[RegisteredModel]:
        with self._lock:
            return [self._models[name].read() for name in sorted(self._models)]

    def models(self, *, after: str | None, limit: int) -> list[RegisteredModel]:
        with self._lock:
            names = [name for name in sorted(self._models) if after is None or name > after]
            return [self._models[name].read() for name in names[:limit]]

    def find_model(self, name: str) -> RegisteredModel | None:
        with self._lock:
            model = self._models.get(name)
            return None if model is None else model.read()

    def resolve(self, ref: ModelRef) -> int | None:
        with self._lock:
            model = self._models.get(ref.name)
            if model is None:
                return None
            if ref.version is not None:
                return ref.version if 1 <= ref.version <= len(model.versions) else None
            if ref.alias is not None:
                return model.aliases.get(ref.alias)
            return len(model.versions) or None

    def find_version(self, name: str, version: int) -> ModelVersion | None:
        with self._lock:
            model = self._models.get(name)
            return None if model is None else model.version(version)

    def versions(self, name: str, *, limit: int | None, before: int | None) -> list[ModelVersion]:
        with self._lock:
            model = self._models.get(name)
            if model is None:
                return []
            top = len(model.versions) if before is None else min(before - 1, len(model.versions))
            bottom = 0 if limit is None else max(0, top - limit)
            return [found for n in range(top, bottom, -1) if (found := model.version(n))]

    def alias_history(self, name: str, alias: str | None) -> list[AliasMove]:
        with self._lock:
            model = self._models.get(name)
            moves = [] if model is None else model.history
            return [move for move in moves if alias is None or move.alias == alias]

    # -- writing -----------------------------------------------------------------

    def add_version(self, name: str, draft: VersionDraft) -> int:
        with self._lock:
            model = self._models.get(name)
            number = 1 if model is None else len(model.versions) + 1
            draft.check_number(name, number)
            if model is None:
                model = self._models[name] = _Model(name, draft.created_at, draft.created_at)
            model.versions.append(
                ModelVersion(
                    model=name,
                    version=number,
                    flavour=draft.flavour,
                    artifact_digest=draft.artifact_digest,
                    artifact_size=draft.artifact_size,
                    signature=Signature.from_dict(_json(draft.signature.to_dict())),
                    profile_digest=draft.profile_digest,
                    metrics=json.loads(json.dumps(draft.metrics)),
                    lineage=_json(draft.lineage),
                    run_id=draft.run_id,
                    parent_version=draft.parent_version,
                    description=draft.description,
                    created_at=draft.created_at,
                    created_by=draft.created_by,
                    tags=dict(draft.tags),
                )
            )
            model.updated_at = draft.created_at
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
        with self._lock:
            model = self._models.get(name)
            if model is None:
                raise model_not_found(name)
            if version is not None and not 1 <= version <= len(model.versions):
                raise version_not_found(name, version)
            previous = model.aliases.get(alias)
            if version is None and previous is None:
                raise alias_not_found(name, alias)
            if version is None:
                del model.aliases[alias]
            else:
                model.aliases[alias] = version
            move = AliasMove(alias, previous, version, actor, reason, at)
            model.history.append(move)
            return move

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        with self._lock:
            model = self._models.get(name)
            if model is None:
                raise model_not_found(name)
            model.tags[key] = value

    def set_description(self, name: str, description: str) -> None:
        with self._lock:
            model = self._models.get(name)
            if model is None:
                raise model_not_found(name)
            model.description = description


def _json(value: Any) -> Any:
    """``value`` as it reads back from a JSON column (what ``json.dumps`` cannot write,
    it writes as ``str``, as the SQL adapter does)."""
    return json.loads(json.dumps(value, default=str))
