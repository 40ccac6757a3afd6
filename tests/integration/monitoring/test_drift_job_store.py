"""Drift checks stored as a time series, and whole monitoring cycles, on both backends."""

from __future__ import annotations

import dataclasses

import numpy as np
import orjson
import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import CollectorRegistry
from sklearn.ensemble import RandomForestClassifier
from sqlalchemy import select

from modelyard.errors import NotFoundError
from modelyard.monitoring import SqlInferenceLogRepository, write_records
from modelyard.monitoring.alerts import AlertBus, AlertEvent, save_rule
from modelyard.monitoring.drift_job import (
    check_drift,
    deployment_model,
    drift_history,
    load_reference,
    monitor_cycle,
)
from modelyard.monitoring.live_metrics import LiveMetricsExporter
from modelyard.monitoring.repository import ModelOf
from modelyard.monitoring.rules import AlertRule
from modelyard.monitoring.sql import SqlMonitoringRepository
from modelyard.monitoring.window import Window
from modelyard.routing import DeploymentStore
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.runner.served import served_model
from modelyard.store.schema import events, webhook_deliveries
from modelyard.yard import Yard

HOUR = 3600.0
T0 = 1_790_000_000.0


def traffic(
    forest: RandomForestClassifier,
    data: tuple[np.ndarray, np.ndarray],
    start: float,
    end: float,
    *,
    rows: int = 300,
    shift: float = 0.0,
    version: int = 1,
    seed: int = 0,
    slow: bool = False,
) -> Window:
    """Live rows resampled from the training data, ``shift`` added to two features."""
    features, labels = data
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(features), rows)
    x = features[pick].copy()
    x[:, :2] += shift
    probabilities = forest.predict_proba(x)
    return Window(
        deployment="fraud-api",
        start=start,
        end=end,
        request_ids=np.array([f"{seed}-{i}" for i in range(rows)], dtype=object),
        ts=np.sort(rng.uniform(start, end, rows)),
        version=np.full(rows, version, dtype=np.int64),
        arm=np.full(rows, "champion", dtype=object),
        status=np.where(rng.uniform(size=rows) < 0.01, 503, 200),
        latency_ms=rng.gamma(2.0, 40.0 if slow else 5.0, rows),
        row_request=np.arange(rows),
        inputs={f"f{i}": x[:, i] for i in range(x.shape[1])},
        outputs={"label": probabilities.argmax(axis=1), "score": probabilities[:, 1]},
        labels=np.where(rng.uniform(size=rows) < 0.5, labels[pick].astype(float), np.nan),
    )


@pytest.fixture
def registered(
    yard: Yard, forest: RandomForestClassifier, classification_data: tuple[np.ndarray, np.ndarray]
) -> Yard:
    yard.register_model(
        "fraud", forest, classification_data[0], metrics={"roc_auc": 0.99, "accuracy": 0.95}
    )
    return yard


def test_drift_checks_are_stored_as_a_time_series(
    registered: Yard,
    forest: RandomForestClassifier,
    classification_data: tuple[np.ndarray, np.ndarray],
) -> None:
    repo = SqlMonitoringRepository(registered.db)
    reference = load_reference(registered.registry, "fraud", 1)
    assert sorted(reference.features) == [f"f{i}" for i in range(8)]
    assert reference.metrics == {"roc_auc": 0.99, "accuracy": 0.95}
    stored = []
    for hour, shift in enumerate([0.0, 0.0, 1.5, 3.0]):
        start = T0 + hour * HOUR
        window = traffic(forest, classification_data, start, start + HOUR, shift=shift, seed=hour)
        result = check_drift(repo, reference, window, now=start + HOUR + 5)
        assert result is not None
        stored.append(result)
    assert [r.dataset_drift for r in stored] == [False, False, True, True]
    assert {"f0", "f1"} <= set(stored[3].report.drifted_features)

    history = drift_history(repo, "fraud-api")
    assert [r.id for r in history] == [r.id for r in stored]
    assert [r.window_end for r in history] == [T0 + h * HOUR for h in range(1, 5)]
    assert history[3].report == stored[3].report  # the JSON round trip loses nothing
    assert (history[0].model, history[0].version, history[0].rows) == ("fraud", 1, 300)
    assert history[2].computed_at == T0 + 3 * HOUR + 5
    middle = drift_history(repo, "fraud-api", T0 + 2 * HOUR, T0 + 3 * HOUR)
    assert [r.window_end for r in middle] == [T0 + 2 * HOUR, T0 + 3 * HOUR]
    newest = drift_history(repo, "fraud-api", limit=2)
    assert [r.window_end for r in newest] == [T0 + 3 * HOUR, T0 + 4 * HOUR]
    assert drift_history(repo, "fraud-api", version=2) == []
    assert drift_history(repo, "other-api") == []


def test_a_version_with_too_few_rows_is_not_checked(
    registered: Yard,
    forest: RandomForestClassifier,
    classification_data: tuple[np.ndarray, np.ndarray],
) -> None:
    repo = SqlMonitoringRepository(registered.db)
    reference = load_reference(registered.registry, "fraud", 1)
    window = traffic(forest, classification_data, T0, T0 + HOUR, rows=10)
    assert check_drift(repo, reference, window, now=T0 + HOUR) is None
    other_version = traffic(forest, classification_data, T0, T0 + HOUR, version=2)
    assert check_drift(repo, reference, other_version, now=T0 + HOUR) is None
    assert drift_history(repo, "fraud-api") == []


def test_monitor_cycles_raise_alerts_once_per_cooldown(
    registered: Yard,
    forest: RandomForestClassifier,
    classification_data: tuple[np.ndarray, np.ndarray],
) -> None:
    db, repo = registered.db, SqlMonitoringRepository(registered.db)
    save_rule(repo, AlertRule("fraud-api", "drift", "drift_share", 0.1, cooldown_s=6 * HOUR,
                            webhook_url="http://127.0.0.1:9/hooks/alerts"), now=T0)  # fmt: skip
    save_rule(repo, AlertRule("fraud-api", "slow", "p99_ms", 150.0, for_windows=2), now=T0)
    windows = {
        hour: traffic(forest, classification_data, T0 + hour * HOUR, T0 + (hour + 1) * HOUR,
                      shift=2.0 if hour >= 1 else 0.0, seed=hour, slow=hour >= 2)
        for hour in range(4)
    }  # fmt: skip

    def reader(deployment: str, start: float, end: float) -> Window:
        assert deployment == "fraud-api"
        return windows[int((start - T0) // HOUR)]

    seen: list[AlertEvent] = []
    bus = AlertBus()
    bus.subscribe(seen.append)
    registry = CollectorRegistry()
    exporter = LiveMetricsExporter(registry)
    state = None
    fired: list[list[str]] = []
    for hour in range(4):
        start = T0 + hour * HOUR
        result = monitor_cycle(
            repo, registered.registry, "fraud-api", start, start + HOUR, window_reader=reader,
            now=start + HOUR, model="fraud", state=state, bus=bus, exporter=exporter,
        )  # fmt: skip
        state = result.state
        fired.append([e.alert.rule for e in result.alerts])
        assert set(result.drift) == {1}
        assert result.figures[0].values["requests"] == 300
    # drift from hour 1, then quiet for the cooldown; p99 slow from hour 2, two windows needed
    assert fired == [[], ["drift"], [], ["slow"]]
    assert [e.alert.rule for e in seen] == ["drift", "slow"]
    assert len(drift_history(repo, "fraud-api")) == 4

    with db.read() as conn:
        rows = conn.execute(select(events).order_by(events.c.id)).mappings().all()
        deliveries = conn.execute(select(webhook_deliveries)).mappings().all()
    assert [(r["kind"], r["subject"], r["actor"]) for r in rows] == [
        ("alert", "fraud-api", "monitor")
    ] * 2
    assert rows[0]["id"] == seen[0].id
    assert rows[0]["reason"].startswith("drift: drift_share = ")
    payload = orjson.loads(rows[0]["payload"])
    assert payload["rule"] == "drift"
    assert payload["version"] == 1
    assert payload["figures"]["dataset_drift"] == 1.0
    assert payload["figures"]["auc_drop"] == pytest.approx(0.99 - payload["figures"]["roc_auc"])
    assert [(d["event_id"], d["url"], d["state"]) for d in deliveries] == [
        (rows[0]["id"], "http://127.0.0.1:9/hooks/alerts", "pending")
    ]
    text = generate_latest(registry).decode()
    assert 'modelyard_live_requests{deployment="fraud-api",version="1"} 300.0' in text
    assert 'modelyard_dataset_drift{deployment="fraud-api",version="1"} 1.0' in text

    # A restarted monitor (no state) reads the last firing back from the events.
    start = T0 + 3 * HOUR
    again = monitor_cycle(
        repo, registered.registry, "fraud-api", start, start + HOUR, window_reader=reader,
        now=start + HOUR + 60, model="fraud",
    )  # fmt: skip
    assert [e.alert.rule for e in again.alerts] == []


def model_of(yard: Yard) -> ModelOf:
    deployments = DeploymentStore(SqlDeploymentRepository(yard.db), yard.registry)
    return served_model(deployments, SqlInferenceLogRepository(yard.db))


def test_the_model_of_a_deployment(yard: Yard) -> None:
    with pytest.raises(NotFoundError, match="no deployment named 'fraud-api'"):
        deployment_model(model_of(yard), "fraud-api")
    row = {"request_id": "r", "deployment": "fraud-api", "version": 1, "status": 200}
    row |= {"latency_ms": 1.0, "rows": 1}
    write_records(SqlInferenceLogRepository(yard.db), [{"ts": T0, "model": "fraud-old", **row}])
    write_records(SqlInferenceLogRepository(yard.db), [{"ts": T0 + 1, "model": "fraud", **row}])
    assert deployment_model(model_of(yard), "fraud-api") == "fraud"


def test_the_deployment_record_names_the_model_before_the_logged_traffic(
    registered: Yard,
) -> None:
    DeploymentStore(SqlDeploymentRepository(registered.db), registered.registry).create(
        "fraud-api", "fraud", 1
    )
    row = {"request_id": "r", "deployment": "fraud-api", "version": 1, "status": 200}
    row |= {"latency_ms": 1.0, "rows": 1, "ts": T0, "model": "fraud-old"}
    write_records(SqlInferenceLogRepository(registered.db), [row])
    assert deployment_model(model_of(registered), "fraud-api") == "fraud"
    with pytest.raises(NotFoundError, match="no deployment named 'other-api', and no traffic"):
        deployment_model(None, "other-api")


def test_a_version_without_a_reference_is_measured_but_not_checked(
    registered: Yard,
    forest: RandomForestClassifier,
    classification_data: tuple[np.ndarray, np.ndarray],
) -> None:
    window = traffic(forest, classification_data, T0, T0 + HOUR, version=7)
    result = monitor_cycle(
        SqlMonitoringRepository(registered.db), registered.registry, "fraud-api", T0, T0 + HOUR,
        window_reader=lambda *_: dataclasses.replace(window), now=T0 + HOUR, model="fraud",
    )  # fmt: skip
    assert result.drift == {}
    assert "drift_share" not in result.figures[0].values
    assert result.figures[0].version == 7
