"""The retention sweep deletes what each deployment's time to live no longer covers."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from sklearn.linear_model import LogisticRegression

from modelyard.config import Settings
from modelyard.monitoring import SqlInferenceLogRepository, read_window, write_records
from modelyard.monitoring.inference_log.policy import default_policy
from modelyard.routing import DeploymentStore
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.runner.retention import sweep_once
from modelyard.yard import Yard

DAY = 86_400.0
NOW = 1_790_000_000.0


def test_each_deployment_keeps_its_own_days(settings: Settings, yard: Yard) -> None:
    features = np.random.default_rng(0).normal(size=(50, 3))
    model = LogisticRegression().fit(features, features[:, 0] > 0)
    yard.register_model("fraud", model, features)
    store = DeploymentStore(SqlDeploymentRepository(yard.db), yard.registry)
    for name in ("short", "default", "forever"):
        store.create(name, "fraud", 1)
    store.update("short", lambda config: replace(config, log_ttl_days=2))
    store.update("forever", lambda config: replace(config, log_ttl_days=0))
    for name in ("short", "default", "forever", "gone"):  # "gone": traffic, no deployment
        write_records(
            SqlInferenceLogRepository(yard.db),
            [
                {
                    "request_id": f"{name}-{age}",
                    "ts": NOW - age * DAY,
                    "deployment": name,
                    "model": "fraud",
                    "version": 1,
                    "status": 200,
                    "latency_ms": 1.0,
                    "rows": 0,
                }
                for age in (1, 5, 40)
            ],  # fmt: skip
        )
    default = default_policy(settings.monitoring)  # the server's default: 30 days
    deleted = sweep_once(store.list(), SqlInferenceLogRepository(yard.db), default, NOW)
    assert deleted == {"short": 2, "default": 1, "gone": 1}
    kept = {
        name: sorted(
            read_window(SqlInferenceLogRepository(yard.db), name, 0.0, NOW + 1).request_ids.tolist()
        )
        for name in ("short", "default", "forever", "gone")
    }
    assert kept == {
        "short": ["short-1"],
        "default": ["default-1", "default-5"],
        "forever": ["forever-1", "forever-40", "forever-5"],
        "gone": ["gone-1", "gone-5"],
    }
