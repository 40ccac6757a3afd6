"""The composition root of one ``modelyard`` command.

``cli_context(ctx)`` reads the settings once per invocation and keeps a
``CliContext`` on the root of the command's context (``ctx.obj``), closed when the
command ends; whichever command (or sub-app, as the tests invoke them) asks first
builds it. The stores are built when a command first needs them, all over the one
database of ``yard``, so ``runs list`` never opens the deployments and ``serve``
never opens the database here.

Every command names models, versions, aliases and deployments through the lookups
here (``model_ref``, ``deployment_model``), so an unknown one is the same mistake
everywhere: a ``NotFoundError``, which the root command prints as one line on stderr
with exit status 2.
"""

from __future__ import annotations

from functools import cached_property

import typer

from modelyard.config import Settings, load_settings
from modelyard.errors import NotFoundError
from modelyard.features.feature_store import FeatureStore
from modelyard.features.online import open_online_store
from modelyard.features.registry import FeatureRegistry
from modelyard.features.sql import SqlDefinitionRepository
from modelyard.monitoring.drift_job import deployment_model
from modelyard.monitoring.inference_log.sql import SqlInferenceLogRepository
from modelyard.monitoring.repository import ModelOf
from modelyard.monitoring.sql import SqlMonitoringRepository
from modelyard.pipelines import RetrainingLoop, StepCache
from modelyard.pipelines.sql import SqlPipelineRepository
from modelyard.routing import DeploymentStore, RolloutController
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.runner.served import served_model
from modelyard.yard import Yard


class CliContext:
    """Settings and the stores of one command; ``yard`` is the facade over tracking and the
    registry, the others share its database."""

    def __init__(self, settings: Settings, yard: Yard | None = None) -> None:
        self.settings = settings
        self._given = yard

    @cached_property
    def yard(self) -> Yard:
        return self._given if self._given is not None else Yard(self.settings)

    @cached_property
    def deployments(self) -> DeploymentStore:
        return self.yard.deployments

    @cached_property
    def controller(self) -> RolloutController:
        """The operator's controls of rollouts (no metrics: the server judges canaries)."""
        return RolloutController(self.deployments)

    @cached_property
    def feature_registry(self) -> FeatureRegistry:
        return FeatureRegistry(SqlDefinitionRepository(self.yard.db), used=self.features_in_use)

    @cached_property
    def features(self) -> FeatureStore:
        """The home's feature store, over this command's registry."""
        return FeatureStore(self.feature_registry, open_online_store(self.settings), self.settings)

    def features_in_use(self) -> dict[str, dict[str, set[str]]]:
        """View -> deployment -> the features it fetches (routing's ``FeatureInputs``): what
        ``features apply`` must not break."""
        used: dict[str, dict[str, set[str]]] = {}
        for deployment in self.deployments.list():
            inputs = deployment.config.features
            for ref in () if inputs is None else inputs.refs:
                view, feature = ref.split(":")
                used.setdefault(view, {}).setdefault(deployment.name, set()).add(feature)
        return used

    @cached_property
    def retraining(self) -> RetrainingLoop:
        """The retraining loop over this command's stores (runs happen in this process)."""
        yard = self.yard
        plans = SqlPipelineRepository(yard.db)
        return RetrainingLoop(
            plans=plans,
            deployments=self.deployments,
            events=SqlDeploymentRepository(yard.db),
            registry=yard.registry,
            tracker=yard.tracking,
            cache=StepCache(plans, yard.artifacts),
            monitoring=self.monitoring,
            inference_log=self.inference_log,
            features=lambda: self.features,
        )

    @cached_property
    def inference_log(self) -> SqlInferenceLogRepository:
        return SqlInferenceLogRepository(self.yard.db)

    @cached_property
    def monitoring(self) -> SqlMonitoringRepository:
        return SqlMonitoringRepository(self.yard.db)

    @cached_property
    def model_of(self) -> ModelOf:
        return served_model(self.deployments, self.inference_log)

    def model_ref(self, text: str) -> tuple[str, int]:
        """``name``, ``name/3`` or ``name@alias`` as (model, version); NotFoundError when
        this home's registry has no such model, version or alias."""
        return self.yard.registry.resolve(text)

    def deployment_model(self, deployment: str) -> str:
        """The model ``deployment`` serves: its record, else its logged traffic (``serve
        --model bc`` logs under ``bc``); NotFoundError when neither knows it."""
        return deployment_model(self.model_of, deployment)

    def log_subject(self, text: str) -> None:
        """``--model`` of a log search, ``name`` or ``name/3``: a deployment (served under
        its own name) or a registered model, and a version its model has; NotFoundError
        otherwise, so a typo is a mistake and not an empty result."""
        name, _, version = text.partition("/")
        try:
            model = self.deployment_model(name)
        except NotFoundError:
            model = name
        self.yard.registry.resolve(f"{model}/{version}" if version else model)

    @property
    def actor(self) -> str | None:
        return self.settings.user

    def close(self) -> None:
        """Close the online store and the database, if this command opened them."""
        if "features" in self.__dict__:
            self.features.close()
        if self._given is None and "yard" in self.__dict__:
            self.yard.close()


def cli_context(ctx: typer.Context) -> CliContext:
    """This invocation's ``CliContext``: built on first use, closed when the command ends."""
    root = ctx.find_root()
    if not isinstance(root.obj, CliContext):
        root.obj = CliContext(load_settings())
        root.call_on_close(root.obj.close)
    return root.obj
