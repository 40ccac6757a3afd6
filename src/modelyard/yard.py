"""``Yard``: the composition root a Python user holds, wiring settings, stores and services."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from modelyard.config import Settings, load_settings
from modelyard.errors import NotFoundError
from modelyard.features.feature_store import FeatureStore
from modelyard.features.online import open_online_store
from modelyard.features.registry import FeatureRegistry
from modelyard.features.sql import SqlDefinitionRepository
from modelyard.monitoring.inference_log.browse import (
    LoggedRequest,
    RequestDetail,
    RequestQuery,
    list_requests,
    show_request,
)
from modelyard.monitoring.inference_log.sql import SqlInferenceLogRepository
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
        self.artifacts: ArtifactStore = open_artifact_store(
            self.settings.resolved_artifacts_url, cache_dir=self.settings.resolved_artifacts_cache
        )
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

    @cached_property
    def inference_log(self) -> SqlInferenceLogRepository:
        """The inference log and its feedback labels, as stored in this home's database."""
        return SqlInferenceLogRepository(self.db)

    def requests(
        self,
        deployment: str,
        *,
        since: float | None = None,
        until: float | None = None,
        version: int | None = None,
        arm: str | None = None,
        status: int | str | None = None,
        labelled: bool | None = None,
        request_id_prefix: str | None = None,
        limit: int = 50,
    ) -> list[LoggedRequest]:
        """``deployment``'s logged requests, newest first, with their labels: ``since <= ts
        < until`` (UNIX seconds), one ``version``/``arm``, ``status`` (a code, ``"ok"`` or
        ``"error"``), ``labelled`` or not, ids starting with ``request_id_prefix``; the
        ``limit`` newest. Raises ``NotFoundError`` for a deployment with no traffic."""
        self._logged_features(deployment)
        query = RequestQuery(
            deployment,
            since=since,
            until=until,
            version=version,
            arm=arm,
            status=status,
            labelled=labelled,
            request_id_prefix=request_id_prefix,
            limit=limit,
        )
        return list_requests(self.inference_log, query)

    def request(self, deployment: str, request_id: str) -> list[RequestDetail]:
        """Every logged record of ``request_id`` in ``deployment`` (its answer, then any
        shadow's) with inputs, fetched features, outputs and labels. Raises
        ``NotFoundError`` when the log holds none."""
        features = self._logged_features(deployment)
        found = show_request(self.inference_log, deployment, request_id, features=features)
        if not found:
            raise NotFoundError(
                f"no request {request_id!r} in the inference log of {deployment!r} (the log "
                "runs about a second behind the answers; sampled-out requests are not logged)"
            )
        return found

    def _logged_features(self, deployment: str) -> tuple[str, ...]:
        """The inputs ``deployment`` fetches from the feature store; raises ``NotFoundError``
        when it is neither a deployment nor a name traffic was logged under."""
        try:
            inputs = self.deployments.get(deployment).config.features
        except NotFoundError:
            if not any(self.inference_log.batch_pages(deployment, -1e300, 1e300, page=1)):
                raise NotFoundError(
                    f"no deployment named {deployment!r}, and no traffic logged for it"
                ) from None
            return ()
        return () if inputs is None else tuple(ref.split(":")[1] for ref in inputs.refs)

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
