"""The model a deployment serves, for monitoring passes and reports.

Routing records which model a deployment serves; monitoring may not read routing's
tables, so the monitoring jobs take a ``ModelOf``, built here: the deployment's
record, else the model of its latest logged traffic (a deployment deleted since, or
traffic logged by another home).
"""

from __future__ import annotations

from modelyard.errors import NotFoundError
from modelyard.monitoring.inference_log.repository import InferenceLogRepository
from modelyard.monitoring.repository import ModelOf
from modelyard.routing import DeploymentStore


def served_model(deployments: DeploymentStore, inference_log: InferenceLogRepository) -> ModelOf:
    """``deployment -> model`` from routing's record of it, else from its logged traffic."""

    def model_of(deployment: str) -> str | None:
        try:
            return deployments.get(deployment).config.model
        except NotFoundError:
            return inference_log.latest_model(deployment)

    return model_of
