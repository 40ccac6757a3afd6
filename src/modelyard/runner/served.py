"""The model a deployment serves, for monitoring passes and reports.

Routing records which model a deployment serves; monitoring may not read routing's
tables, so the monitoring jobs take a ``ModelOf`` and their hosts (the monitor
loop, ``modelyard monitor``) build it here: the deployment's record, else the
model of its latest logged traffic (a deployment deleted since, or traffic
logged by another home).
"""

from __future__ import annotations

from modelyard.errors import NotFoundError
from modelyard.monitoring.inference_log.sql import SqlInferenceLogRepository
from modelyard.monitoring.repository import ModelOf
from modelyard.routing import DeploymentStore
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.yard import Yard


def served_model(yard: Yard) -> ModelOf:
    """``deployment -> model`` from routing's record of it, else from its logged traffic."""
    store = DeploymentStore(SqlDeploymentRepository(yard.db), yard.registry)
    inference_log = SqlInferenceLogRepository(yard.db)

    def model_of(deployment: str) -> str | None:
        try:
            return store.get(deployment).config.model
        except NotFoundError:
            return inference_log.latest_model(deployment)

    return model_of
