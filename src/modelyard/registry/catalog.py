"""Reading the registry: models, versions, aliases, profiles, and loading a version.

Everything here goes through ``SqlReader`` (plain SQL, stdlib sqlite3 on the
embedded default) and never imports SQLAlchemy, so that a fresh process can
load ``fraud@champion`` and predict in a fraction of a second.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from modelyard.errors import AliasNotFoundError, ModelNotFoundError, VersionNotFoundError
from modelyard.registry.flavours import FLAVOURS, LoadOptions, Outputs, Predictor
from modelyard.registry.refs import ModelRef, parse_ref
from modelyard.registry.signature import Batch, Signature
from modelyard.store.artifacts import ArtifactStore
from modelyard.store.reader import SqlReader


@dataclass(frozen=True)
class ModelVersion:
    """One immutable version of a registered model."""

    model: str
    version: int
    flavour: str
    artifact_digest: str
    artifact_size: int
    signature: Signature
    profile_digest: str | None
    metrics: dict[str, float]
    lineage: dict[str, Any]
    run_id: str | None
    parent_version: int | None
    description: str
    created_at: float
    created_by: str | None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    description: str
    created_at: float
    updated_at: float
    latest_version: int | None
    aliases: dict[str, int]
    tags: dict[str, str]


@dataclass(frozen=True)
class AliasMove:
    """One move of an alias: from which version to which (None: unset), by whom, why, when."""

    alias: str
    from_version: int | None
    to_version: int | None
    actor: str | None
    reason: str
    at: float


@dataclass
class LoadedModel:
    """A version ready to predict: ``predict(batch)`` validates, then runs the model."""

    name: str
    version: int
    predictor: Predictor
    profile_digest: str | None = None

    @property
    def signature(self) -> Signature:
        return self.predictor.signature

    def predict(self, batch: Batch) -> Outputs:
        return self.predictor.predict(batch)


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
_VERSION = """
SELECT v.id, v.model_id, v.version, v.flavour, v.artifact_digest, v.artifact_size, v.signature,
       v.profile_digest, v.metrics, v.lineage, v.run_id, v.parent_version, v.description,
       v.created_at, v.created_by
FROM model_versions v JOIN registered_models m ON m.id = v.model_id
WHERE m.name = :name AND v.version = :version"""


class Catalog:
    """Read access to the registry through a ``SqlReader`` and the artifact store."""

    def __init__(self, reader: SqlReader, artifacts: ArtifactStore) -> None:
        self._reader = reader
        self._artifacts = artifacts

    def _rows(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        return self._reader.fetch_all(sql, params)

    def list_models(self) -> list[RegisteredModel]:
        return [self._model(row) for row in self._rows(_MODEL + " ORDER BY name")]

    def get_model(self, name: str) -> RegisteredModel:
        rows = self._rows(_MODEL + " WHERE name = :name", name=name)
        if not rows:
            raise ModelNotFoundError(f"no registered model named {name!r}")
        return self._model(rows[0])

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

    def list_versions(self, name: str) -> list[ModelVersion]:
        model = self.get_model(name)
        return [self.get_version(name, v) for v in range(1, (model.latest_version or 0) + 1)]

    def resolve(self, ref: str | ModelRef) -> tuple[str, int]:
        """The ``(model, version)`` a reference points at now (a version, an alias, or latest)."""
        ref = parse_ref(ref) if isinstance(ref, str) else ref
        if ref.version is not None:
            rows = self._rows(_RESOLVE_VERSION, name=ref.name, version=ref.version)
        elif ref.alias is not None:
            rows = self._rows(_RESOLVE_ALIAS, name=ref.name, alias=ref.alias)
        else:
            rows = self._rows(_RESOLVE_LATEST, name=ref.name)
        if rows and rows[0][0] is not None:
            return ref.name, int(rows[0][0])
        self.get_model(ref.name)  # ModelNotFoundError when the model itself is unknown
        if ref.alias is not None:
            raise AliasNotFoundError(f"model {ref.name!r} has no alias {ref.alias!r}")
        if ref.version is not None:
            raise VersionNotFoundError(f"model {ref.name!r} has no version {ref.version}")
        raise VersionNotFoundError(f"model {ref.name!r} has no versions yet")

    def get_version(self, name: str, version: int) -> ModelVersion:
        rows = self._rows(_VERSION, name=name, version=version)
        if not rows:
            self.get_model(name)
            raise VersionNotFoundError(f"model {name!r} has no version {version}")
        (vid, model_id, number, flavour, digest, size, signature, profile, metrics, lineage,
         run_id, parent, description, created_at, created_by) = rows[0]  # fmt: skip
        tags = self._rows(
            "SELECT key, value FROM model_version_tags WHERE version_id = :id", id=vid
        )
        aliases = self._rows(
            "SELECT alias FROM model_aliases WHERE model_id = :id AND version = :v ORDER BY alias",
            id=model_id,
            v=number,
        )
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
            tags=dict(tags),
            aliases=tuple(a for (a,) in aliases),
        )

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        """Every move of the model's aliases (or of one alias), oldest first."""
        sql = """
SELECT h.alias, h.from_version, h.to_version, h.actor, h.reason, h.at
FROM alias_history h JOIN registered_models m ON m.id = h.model_id WHERE m.name = :name"""
        if alias is not None:
            sql += " AND h.alias = :alias"
        self.get_model(name)
        rows = self._rows(sql + " ORDER BY h.id", name=name, alias=alias)
        return [AliasMove(*row) for row in rows]

    def profile(self, name: str, version: int) -> dict[str, Any]:
        """The reference profile stored with a version (JSON; its row sample is an artifact)."""
        found = self.get_version(name, version)
        if found.profile_digest is None:
            return {}
        data = self._artifacts.get_bytes(found.profile_digest, name=f"{name}/{version} profile")
        result: dict[str, Any] = json.loads(data)
        return result

    def artifact_bytes(self, found: ModelVersion) -> bytes:
        """The version's model file, its hash verified."""
        return self.artifact(found.artifact_digest, name=f"{found.model}/{found.version}")

    def artifact(self, digest: str, *, name: str | None = None) -> bytes:
        """Any stored blob by digest (a profile's row sample, say), its hash verified."""
        return self._artifacts.get_bytes(digest, name=name)

    def load(
        self, ref: str | ModelRef, *, trusted: bool = False, intra_op_threads: int = 1
    ) -> LoadedModel:
        """Load a version as a ``LoadedModel``; the artifact's hash is verified first."""
        name, number = self.resolve(ref)
        found = self.get_version(name, number)
        predictor = FLAVOURS[found.flavour].load(
            self.artifact_bytes(found),
            found.signature,
            LoadOptions(trusted=trusted, intra_op_threads=intra_op_threads),
        )
        return LoadedModel(name, number, predictor, found.profile_digest)
