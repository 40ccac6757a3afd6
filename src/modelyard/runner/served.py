"""The model a deployment serves, for monitoring passes and reports.

Routing records which model a deployment serves; monitoring may not read routing's
tables, so the monitoring jobs take a ``ModelOf`` and their hosts (the monitor
loop, ``modelyard monitor``) build it here: the deployment's record, else the
model of its latest logged traffic (a deployment deleted since, or traffic
logged by another home).
"""

from __future__ import annotations

from modelyard.errors import NotFoundError
from modelyard.monitoring.inference_log.storage import latest_model
from modelyard.monitoring.repository import ModelOf
from modelyard.routing.deployments import DeploymentStore
from modelyard.yard import Yard


def served_model(yard: Yard) -> ModelOf:
    """``deployment -> model`` from routing's record of it, else from its logged traffic."""
    store = DeploymentStore(yard.db, yard.registry)

    def model_of(deployment: str) -> str | None:
        try:
            return store.get(deployment).config.model
        except NotFoundError:
            return latest_model(yard.db, deployment)

    return model_of
