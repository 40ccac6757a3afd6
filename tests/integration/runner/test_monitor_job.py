"""The server's monitoring pass: live metrics, drift checks and alerts over logged traffic,
published for /metrics."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
from sklearn.ensemble import RandomForestClassifier

from modelyard.config import Settings
from modelyard.monitoring import SqlInferenceLogRepository, write_records
from modelyard.monitoring.alerts import save_rule
from modelyard.monitoring.drift_job import drift_history
from modelyard.monitoring.rules import AlertRule
from modelyard.monitoring.sql import SqlMonitoringRepository
from modelyard.runner.host import RunnerStores, monitor_job
from modelyard.serving.telemetry.jsonlog import JsonLog
from modelyard.serving.telemetry.metrics import MONITORING_TEXT
from modelyard.yard import Yard

NOW = 1_790_000_000.0


def test_a_cycle_measures_checks_drift_alerts_and_publishes(
    settings: Settings,
    yard: Yard,
    forest: RandomForestClassifier,
    classification_data: tuple[np.ndarray, np.ndarray],
    tmp_path: Path,
) -> None:
    features, _ = classification_data
    yard.register_model("fraud", forest, features)
    save_rule(
        SqlMonitoringRepository(yard.db), AlertRule("fraud", "slow", "p99_ms", 50.0), now=NOW - 3600
    )
    rng = np.random.default_rng(1)
    shifted = features[rng.integers(0, len(features), 400)] + 3.0  # every feature drifts
    probabilities = forest.predict_proba(shifted)
    write_records(
        SqlInferenceLogRepository(yard.db),
        [
            {"request_id": f"r{i}", "ts": NOW - 60 + i * 0.1, "deployment": "fraud",
             "model": "fraud", "version": 1, "status": 200, "latency_ms": 80.0, "rows": 1,
             "inputs": {f"f{j}": shifted[i : i + 1, j] for j in range(features.shape[1])},
             "outputs": {"label": probabilities[i : i + 1].argmax(axis=1),
                         "probabilities": probabilities[i : i + 1]}}
            for i in range(len(shifted))
        ],
    )  # fmt: skip
    stores = RunnerStores(settings)
    job = monitor_job(settings, stores, publish_to=tmp_path / MONITORING_TEXT, clock=lambda: NOW)
    log = JsonLog(tmp_path / "monitor.jsonl", worker="monitor")
    with httpx.Client() as client:
        results = job.run_once(client, log)
    log.close()
    stores.close()
    result = results["fraud"]
    assert result is not None
    assert result.snapshot.overall.traffic.requests == 400
    assert result.drift[1].dataset_drift
    assert [r.version for r in drift_history(SqlMonitoringRepository(yard.db), "fraud")] == [1]
    assert [event.alert.rule for event in result.alerts] == ["slow"]
    published = (tmp_path / MONITORING_TEXT).read_text()
    assert 'modelyard_live_requests{deployment="fraud",version="1"} 400.0' in published
    assert 'modelyard_dataset_drift{deployment="fraud",version="1"} 1.0' in published
    assert '"event":"alert"' in (tmp_path / "monitor.jsonl").read_text()
