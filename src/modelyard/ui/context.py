"""The dashboard's composition root: the settings and the stores its routes read.

Built once per process that serves the dashboard (a serving worker, on the first
``/ui`` request, or ``modelyard ui``), over one database, like the CLI's
``cli_context``: the pages read the rows the commands read, through the same
library calls, so the two never disagree.
"""

from __future__ import annotations

from functools import cached_property

from modelyard.config import Settings
from modelyard.monitoring.inference_log.sql import SqlInferenceLogRepository
from modelyard.monitoring.repository import ModelOf
from modelyard.monitoring.sql import SqlMonitoringRepository
from modelyard.routing import DeploymentStore, RolloutController
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.runner.served import served_model
from modelyard.yard import Yard


class UiContext:
    """The stores of the dashboard over the home's database. Routes run on a thread pool:
    two may build the same store object at once, which is harmless (each is a thin view
    of ``yard.db``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.yard = Yard(settings)

    @cached_property
    def deployments(self) -> DeploymentStore:
        return self.yard.deployments

    @cached_property
    def controller(self) -> RolloutController:
        """The operator's controls of rollouts (the server's runner judges canaries)."""
        return RolloutController(self.deployments)

    @cached_property
    def events(self) -> SqlDeploymentRepository:
        return SqlDeploymentRepository(self.yard.db)

    @cached_property
    def inference_log(self) -> SqlInferenceLogRepository:
        return self.yard.inference_log

    @cached_property
    def monitoring(self) -> SqlMonitoringRepository:
        return SqlMonitoringRepository(self.yard.db)

    @cached_property
    def model_of(self) -> ModelOf:
        return served_model(self.deployments, self.inference_log)

    def close(self) -> None:
        self.yard.close()
