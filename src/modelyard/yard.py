"""``Yard``: the composition root a Python user holds, wiring settings, stores and services."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from modelyard.config import Settings, load_settings
from modelyard.features.feature_store import FeatureStore
from modelyard.features.online import open_online_store
from modelyard.features.registry import FeatureRegistry
from modelyard.features.sql import SqlDefinitionRepository
from modelyard.registry import LoadedModel, ModelVersion
from modelyard.registry.registry import Registry
from modelyard.registry.sql import SqlRegistryRepository
from modelyard.routing import DeploymentStore
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.store.artifacts import ArtifactStore, open_artifact_store
from modelyard.store.database import Database
from modelyard.tracking import Run, Tracker
from modelyard.tracking.sql import SqlRunRepository


class Yard:
    """One modelyard home: ``yard = Yard()`` uses ``./.modelyard`` or ``MODELYARD_*`` settings."""

    def __init__(self, settings: Settings | None = None, **overrides: Any) -> None:
        self.settings = settings or load_settings(**overrides)
        self.db = Database(self.settings.resolved_database_url)
        self.artifacts: ArtifactStore = open_artifact_store(self.settings.resolved_artifacts_url)
        self.tracking = Tracker(
            SqlRunRepository(self.db),
            self.artifacts,
            user=self.settings.user,
            flush_points=self.settings.tracking.metric_flush_points,
        )
        self.registry = Registry(
            SqlRegistryRepository(self.db),
            self.artifacts,
            runs=self.tracking,
            user=self.settings.user,
        )

    @cached_property
    def features(self) -> FeatureStore:
        """The feature store of this home (its online store opened on first use)."""
        registry = FeatureRegistry(SqlDefinitionRepository(self.db))
        return FeatureStore(registry, open_online_store(self.settings), self.settings)

    @cached_property
    def deployments(self) -> DeploymentStore:
        """The deployments of this home: ``create``, ``update``, ``get``, ``events``."""
        return DeploymentStore(SqlDeploymentRepository(self.db), self.registry)

    def start_run(self, name: str, **kwargs: Any) -> Run:
        """Start a tracked run; see ``Tracker.start_run``."""
        return self.tracking.start_run(name, **kwargs)

    def register_model(self, name: str, model: Any, data: Any, **kwargs: Any) -> ModelVersion:
        """Register the next version of ``name``; see ``Registry.register``."""
        return self.registry.register(name, model, data, **kwargs)

    def load_model(self, ref: str, *, trusted: bool = False) -> LoadedModel:
        """Load ``name``, ``name/3`` or ``name@alias`` as a ready ``LoadedModel``."""
        return self.registry.load(ref, trusted=trusted)

    def close(self) -> None:
        if "features" in self.__dict__:
            self.features.close()
        self.db.dispose()

    def __enter__(self) -> Yard:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
