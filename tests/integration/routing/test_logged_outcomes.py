"""A/B outcomes from the inference log joined to feedback by request id, on each backend.

The deployment's versions come from an in-memory catalog: only the log and the
feedback are read from the database here.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import partial

import pytest
from sqlalchemy import insert

from modelyard.monitoring import request_outcomes, write_records
from modelyard.monitoring.inference_log.sql import SqlInferenceLogRepository
from modelyard.registry.signature import FieldSpec, Signature
from modelyard.routing import (
    DeploymentStore,
    InMemoryCatalog,
    LoggedOutcomes,
    Sequential,
)
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.store.schema import feedback
from modelyard.yard import Yard

T0 = 1_700_000_000.0
ARMS: list[tuple[str, int | str, float]] = [("a", 1, 50.0), ("b", "3", 50.0)]
FOUR_INPUTS = Signature(tuple(FieldSpec(f"f{i}", "float32") for i in range(4)))


@pytest.fixture
def running(yard: Yard) -> DeploymentStore:
    catalog = InMemoryCatalog()
    for _ in range(3):
        catalog.add("m", FOUR_INPUTS)
    store = DeploymentStore(SqlDeploymentRepository(yard.db), catalog, clock=lambda: T0)
    store.create("api", "m", 1, routing_key="header:x-user")
    store.start_experiment("api", ARMS, Sequential(tau=0.05, min_samples_per_arm=200), actor="ana")
    return store


def test_logged_outcomes_join_feedback_by_request_id(running: DeploymentStore, yard: Yard) -> None:
    experiment = running.get("api").config.experiment
    assert experiment is not None
    at = experiment.started_at + 1
    records = [
        {"request_id": f"q{i}", "ts": at, "deployment": "api", "model": "m",
         "version": 1 if i < 4 else 3, "arm": "a" if i < 4 else "b", "status": 200,
         "latency_ms": 3.0, "rows": 1}
        for i in range(6)
    ]  # fmt: skip
    labels = {"q0": 1, "q1": 0, "q4": {"revenue": 12.5}, "q5": True}
    write_records(SqlInferenceLogRepository(yard.db), records)
    with yard.db.write() as conn:
        conn.execute(
            insert(feedback),
            [
                {"request_id": q, "label": json.dumps(v), "received_at": at, "dedupe_key": q}
                for q, v in labels.items()
            ],
        )
    source = LoggedOutcomes(partial(request_outcomes, SqlInferenceLogRepository(yard.db)))
    a = source("api", "a", 1, experiment, experiment.started_at, at + 1)
    assert (a.n, a.estimate) == (4, 0.25)  # q0 converted; q1 did not; q2, q3 have no feedback
    b = source("api", "b", 3, experiment, experiment.started_at, at + 1)
    assert b.n == 2  # q4's label is an object without a "label" field: not a conversion
    assert b.estimate == 0.5
    revenue = source(
        "api",
        "b",
        3,
        replace(experiment, metric="revenue", kind="mean"),
        experiment.started_at,
        at + 1,
    )
    assert (revenue.n, revenue.estimate) == (1, 12.5)
