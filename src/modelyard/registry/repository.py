"""The ports the registry keeps its models behind, and the one it asks tracking through.

* ``CatalogRepository``: the reads (models, versions, aliases, alias history).
  ``registry.sql_reads.SqlCatalogRepository`` answers them with plain SQL
  through ``SqlReader``, without SQLAlchemy, for ``load_model``'s fast path.
* ``RegistryRepository``: the reads plus the writes (a new version under the
  model's lock, alias moves with their history, tags, descriptions).
  ``registry.sql.SqlRegistryRepository`` implements it on the metadata database.
* ``RunDatasets``: what a run recorded about its data, for a version's lineage;
  ``tracking.Tracker`` provides it (the registry never reads tracking's tables).

``registry.memory.InMemoryRegistryRepository`` implements both registry ports in
memory; ``tests/integration/registry/test_repository_contract.py`` holds it and
the SQL adapters to the same behaviour.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from modelyard.registry.records import AliasMove, ModelVersion, RegisteredModel, VersionDraft
from modelyard.registry.refs import ModelRef


class CatalogRepository(Protocol):
    """Read access to registered models and their versions."""

    def list_models(self) -> list[RegisteredModel]:
        """Every registered model, by name."""
        ...

    def models(self, *, after: str | None, limit: int) -> list[RegisteredModel]:
        """At most ``limit`` models named after ``after`` (None: from the first), by name."""
        ...

    def find_model(self, name: str) -> RegisteredModel | None: ...

    def resolve(self, ref: ModelRef) -> int | None:
        """The version number ``ref`` points at now (its version if that exists, its
        alias's version, or the latest), or None."""
        ...

    def find_version(self, name: str, version: int) -> ModelVersion | None: ...

    def versions(self, name: str, *, limit: int | None, before: int | None) -> list[ModelVersion]:
        """The model's versions numbered below ``before`` (None: all), newest first, at
        most ``limit`` (None: every one); none for an unknown model."""
        ...

    def alias_history(self, name: str, alias: str | None) -> list[AliasMove]:
        """Every move of the model's aliases (or of one alias), oldest first."""
        ...


class RegistryRepository(CatalogRepository, Protocol):
    """The catalog's reads, and the registry's writes (each one transaction)."""

    def add_version(self, name: str, draft: VersionDraft) -> int:
        """Store ``draft`` as the next version of ``name`` (registering the model if it is
        new) and return its number.

        Numbers are allocated under a lock on the model, so concurrent writers get
        distinct consecutive numbers; ``draft.check_number`` runs under that lock and
        may refuse the number, leaving nothing written.
        """
        ...

    def move_alias(
        self,
        name: str,
        alias: str,
        version: int | None,
        actor: str | None,
        reason: str,
        at: float,
    ) -> AliasMove:
        """Point ``alias`` at ``version`` (None: remove it) and record the move.

        Raises ``ModelNotFoundError``, ``VersionNotFoundError``, or
        ``AliasNotFoundError`` (removing an alias that is not set).
        """
        ...

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        """Set (or replace) a tag of the model; ``ModelNotFoundError`` if there is none."""
        ...

    def set_description(self, name: str, description: str) -> None:
        """Replace the model's description; ``ModelNotFoundError`` if there is none."""
        ...


class RecordedDataset(Protocol):
    """A dataset a run recorded (``tracking.DataFingerprint`` is one)."""

    @property
    def digest(self) -> str: ...

    @property
    def rows(self) -> int: ...


class RunDatasets(Protocol):
    """Tracking, as far as the registry needs it (``tracking.Tracker`` is one)."""

    def run_datasets(self, run_id: str) -> Mapping[str, RecordedDataset]:
        """The datasets run ``run_id`` recorded, by name (none for an unknown run)."""
        ...
