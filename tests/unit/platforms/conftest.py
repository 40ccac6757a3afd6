"""Deployments as the renderers receive them: plain records, no database."""

from __future__ import annotations

from typing import Any

from modelyard.routing import Deployment, DeploymentConfig


def deployment(revision: int = 1, **config: Any) -> Deployment:
    """``fraud-api`` serving ``fraud``: champion 1 unless given."""
    config.setdefault("champion", 1)
    return Deployment("fraud-api", DeploymentConfig("fraud", **config), None, revision, 0.0, 0.0)
