"""Reading the registry: models, versions, aliases, profiles, and loading a version.

``Catalog`` reads through a ``CatalogRepository``; ``load_model`` gives it
``registry.sql_reads.SqlCatalogRepository`` (plain SQL, stdlib sqlite3 on the
embedded default), and nothing here imports SQLAlchemy, so that a fresh process
can load ``fraud@champion`` and predict in a fraction of a second.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from modelyard.errors import UntrustedFormatError, ValidationError, VersionNotFoundError
from modelyard.registry.flavours import FLAVOURS, LoadOptions, Outputs, Predictor
from modelyard.registry.records import (
    AliasMove,
    ModelPage,
    ModelVersion,
    RegisteredModel,
    VersionPage,
    alias_not_found,
    model_not_found,
    version_not_found,
)
from modelyard.registry.refs import ModelRef, check_model_name, parse_ref
from modelyard.registry.repository import CatalogRepository
from modelyard.registry.signature import Batch, Signature
from modelyard.store.artifacts import ArtifactStore


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


class Catalog:
    """Read access to the registry through a ``CatalogRepository`` and the artifact store."""

    def __init__(self, models: CatalogRepository, artifacts: ArtifactStore) -> None:
        self._models = models
        self._artifacts = artifacts

    def list_models(self) -> list[RegisteredModel]:
        return self._models.list_models()

    def models_page(self, *, limit: int = 50, page_token: str | None = None) -> ModelPage:
        """At most ``limit`` models by name, after ``page_token`` (the ``next_page_token``
        of the page before; None: from the first). Each page is one range of the name index."""
        if limit < 1:
            raise ValidationError(f"limit must be at least 1, got {limit}")
        after = None if page_token is None else _model_token(page_token)
        found = self._models.models(after=after, limit=limit + 1)
        more = len(found) > limit
        return ModelPage(found[:limit], found[limit - 1].name if more else None)

    def get_model(self, name: str) -> RegisteredModel:
        found = self._models.find_model(name)
        if found is None:
            raise model_not_found(name)
        return found

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Every version of the model, oldest first (``versions_page`` for a page)."""
        self.get_model(name)
        return self._models.versions(name, limit=None, before=None)[::-1]

    def versions_page(
        self, name: str, *, limit: int = 50, page_token: str | None = None
    ) -> VersionPage:
        """At most ``limit`` versions, newest first, below ``page_token`` (the
        ``next_page_token`` of the page before; None: from the latest). Each page is one
        range of the (model, version) index, whatever its number."""
        if limit < 1:
            raise ValidationError(f"limit must be at least 1, got {limit}")
        before = None if page_token is None else _version_token(page_token)
        self.get_model(name)
        found = self._models.versions(name, limit=limit + 1, before=before)
        more = len(found) > limit
        return VersionPage(found[:limit], str(found[limit - 1].version) if more else None)

    def resolve(self, ref: str | ModelRef) -> tuple[str, int]:
        """The ``(model, version)`` a reference points at now (a version, an alias, or latest)."""
        ref = parse_ref(ref) if isinstance(ref, str) else ref
        number = self._models.resolve(ref)
        if number is not None:
            return ref.name, number
        self.get_model(ref.name)  # ModelNotFoundError when the model itself is unknown
        if ref.alias is not None:
            raise alias_not_found(ref.name, ref.alias)
        if ref.version is not None:
            raise version_not_found(ref.name, ref.version)
        raise VersionNotFoundError(f"model {ref.name!r} has no versions yet")

    def get_version(self, name: str, version: int) -> ModelVersion:
        found = self._models.find_version(name, version)
        if found is None:
            self.get_model(name)
            raise version_not_found(name, version)
        return found

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        """Every move of the model's aliases (or of one alias), oldest first."""
        self.get_model(name)
        return self._models.alias_history(name, alias)

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
        """Load a version as a ``LoadedModel``; the artifact's hash is verified first.

        A pickle-based version loads only with ``trusted=True`` *and* if it was marked
        trusted when registered (``ModelVersion.trust``): a trusting caller that follows
        an alias (a server with ``--trusted``) is not made to unpickle whatever version
        the alias is moved to later."""
        name, number = self.resolve(ref)
        found = self.get_version(name, number)
        flavour = FLAVOURS[found.flavour]
        if trusted and flavour.pickle_based and found.trust is None:
            raise UntrustedFormatError(
                f"{name}/{number} is stored as {found.flavour}, which runs code when loaded, "
                "and was not marked trusted when it was registered; register it again with "
                "trusted=True (and a trusted_reason) if you trust its source"
            )
        predictor = flavour.load(
            self.artifact_bytes(found),
            found.signature,
            LoadOptions(trusted=trusted, intra_op_threads=intra_op_threads),
        )
        return LoadedModel(name, number, predictor, found.profile_digest)


def _model_token(token: str) -> str:
    try:
        return check_model_name(token)
    except ValidationError:
        raise ValidationError(
            f"page_token {token!r} is not one this command printed: pass the "
            "next_page_token of the previous page as it was"
        ) from None


def _version_token(token: str) -> int:
    if not token.isdigit() or int(token) < 2:
        raise ValidationError(
            f"page_token {token!r} is not one this command printed: pass the "
            "next_page_token of the previous page as it was"
        )
    return int(token)
