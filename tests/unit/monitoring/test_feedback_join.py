"""Feedback and its joins on the in-memory log: idempotent posts, request and entity joins,
outcomes per arm, and the retention sweep (the SQL side is the contract test's)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from modelyard.errors import ValidationError
from modelyard.monitoring import (
    FeedbackItem,
    FeedbackStore,
    InMemoryInferenceLogRepository,
    LogPolicy,
    joined,
    purge,
    read_window,
    request_outcomes,
    retention_sweep,
    write_records,
)


@pytest.fixture
def log() -> InMemoryInferenceLogRepository:
    return InMemoryInferenceLogRepository()


def logged(log: InMemoryInferenceLogRepository, *requests: dict[str, Any]) -> None:
    """Store requests of deployment ``recs``; each names ``id``, ``ts`` and ``users``."""
    records = []
    for request in requests:
        users = request.get("users", ["u1"])
        records.append(
            {
                "request_id": request["id"],
                "ts": request["ts"],
                "deployment": request.get("deployment", "recs"),
                "model": "ranker",
                "version": request.get("version", 1),
                "arm": request.get("arm", "primary"),
                "status": 200,
                "latency_ms": 2.0,
                "rows": len(users),
                "inputs": {"user": users, "x": np.arange(len(users), dtype=np.float64)},
                "outputs": {"score": np.full(len(users), 0.5)},
            }
        )
    write_records(log, records)


def test_posts_count_new_replaced_and_unchanged_labels(log: InMemoryInferenceLogRepository) -> None:
    store = FeedbackStore(log)
    first = store.post([FeedbackItem(1, request_id="r1")], received_at=1.0)
    assert (first.received, first.stored, first.replaced, first.unchanged) == (1, 1, 0, 0)
    again = store.post([FeedbackItem(1, request_id="r1")], received_at=2.0)
    assert (again.stored, again.replaced, again.unchanged) == (0, 0, 1)
    changed = store.post([FeedbackItem(0, request_id="r1"), FeedbackItem(2, request_id="r2")])
    assert (changed.received, changed.stored, changed.replaced, changed.unchanged) == (2, 1, 1, 0)
    twice = store.post([FeedbackItem(5, request_id="r3"), FeedbackItem(6, request_id="r3")])
    assert (twice.stored, twice.unchanged) == (1, 1)  # the later item wins
    assert log.request_labels({"r1", "r2", "r3"}) == {
        ("r1", 0): "0",
        ("r2", 0): "2",
        ("r3", 0): "6",
    }
    with pytest.raises(ValidationError, match=r"labels\[1\]\.label must be a number"):
        store.post([FeedbackItem(1, request_id="ok"), FeedbackItem(float("nan"), request_id="x")])
    assert log.request_labels({"ok"}) == {}


def test_a_request_label_joins_its_row_on_every_arm(log: InMemoryInferenceLogRepository) -> None:
    logged(
        log,
        {"id": "r1", "ts": 10.0, "users": ["u1", "u2"]},
        {"id": "r1", "ts": 10.0, "version": 2, "arm": "shadow", "users": ["u1", "u2"]},
        {"id": "r2", "ts": 20.0},
    )
    FeedbackStore(log).post([FeedbackItem("yes", request_id="r1", row=1)])
    window = joined(log, "recs", 0.0, 100.0)
    assert window.labels is not None
    assert window.labels.tolist() == [None, "yes", None, "yes", None]
    only_v2 = joined(log, "recs", 0.0, 100.0, version=2)
    assert only_v2.arm.tolist() == ["shadow"]
    assert only_v2.labels is not None
    assert only_v2.labels.tolist() == [None, "yes"]


def test_an_entity_label_joins_the_latest_prediction_within_the_horizon(
    log: InMemoryInferenceLogRepository,
) -> None:
    logged(
        log,
        {"id": "a", "ts": 100.0, "users": ["u1", "u2"]},
        {"id": "b", "ts": 200.0, "users": ["u1"]},
        {"id": "c", "ts": 300.0, "users": ["u1", "u3"]},
    )
    FeedbackStore(log).post(
        [
            FeedbackItem("before-any", entity_key="u1", event_time=50.0),
            FeedbackItem("to-a", entity_key="u2", event_time=150.0),
            FeedbackItem("to-b", entity_key="u1", event_time=250.0),
            FeedbackItem("to-c", entity_key="u3", event_time=300.0),
            FeedbackItem("to-c-too", entity_key="u1", event_time=350.0),
        ]
    )
    window = joined(log, "recs", 0.0, 1000.0, entity_field="user")
    assert window.labels is not None
    assert window.labels.tolist() == [None, "to-a", "to-b", "to-c-too", "to-c"]
    early = joined(log, "recs", 0.0, 250.0, entity_field="user")  # c's event stays c's
    assert early.labels is not None
    assert early.labels.tolist() == [None, "to-a", "to-b"]
    short = joined(log, "recs", 0.0, 1000.0, entity_field="user", entity_horizon_s=20.0)
    assert short.labels is not None
    assert short.labels.tolist() == [None, None, None, None, "to-c"]
    with pytest.raises(ValidationError, match="entity_field 'customer' is not among"):
        joined(log, "recs", 0.0, 1000.0, entity_field="customer")


def test_a_request_label_wins_over_an_entity_label(log: InMemoryInferenceLogRepository) -> None:
    logged(log, {"id": "a", "ts": 100.0})
    FeedbackStore(log).post(
        [
            FeedbackItem("by-entity", entity_key="u1", event_time=110.0),
            FeedbackItem("by-request", request_id="a"),
        ]
    )
    window = joined(log, "recs", 0.0, 1000.0, entity_field="user")
    assert window.labels is not None
    assert window.labels.tolist() == ["by-request"]


def test_request_outcomes_of_one_arm_once_per_label(log: InMemoryInferenceLogRepository) -> None:
    logged(
        log,
        {"id": "q0", "ts": 10.0, "arm": "a", "users": ["u1", "u2"]},
        {"id": "q1", "ts": 11.0, "arm": "a"},
        {"id": "q2", "ts": 12.0, "arm": "b", "version": 2},
        {"id": "q3", "ts": 13.0, "arm": "b"},
    )
    FeedbackStore(log).post(
        [
            FeedbackItem(1, request_id="q0"),
            FeedbackItem(0, request_id="q0", row=1),
            FeedbackItem(1, request_id="q2"),
        ]
    )
    assert sorted(request_outcomes(log, "recs", "a", 1, 0.0, 100.0), key=str) == [
        ("q0", "0"),
        ("q0", "1"),
        ("q1", None),
    ]
    assert request_outcomes(log, "recs", "b", 2, 0.0, 100.0) == [("q2", "1")]
    assert request_outcomes(log, "recs", "b", 1, 0.0, 100.0) == [("q3", None)]


def test_purge_and_the_retention_sweep_follow_each_ttl(log: InMemoryInferenceLogRepository) -> None:
    for i in range(10):
        logged(log, {"id": f"fraud-{i}", "ts": float(i * 100), "deployment": "fraud"})
        logged(log, {"id": f"recs-{i}", "ts": float(i * 100)})
    assert purge(log, 300.0, deployment="fraud", chunk=2) == 3
    deleted = retention_sweep(
        log, now=1000.0, policies={"recs": LogPolicy(ttl_s=250.0)}, default=LogPolicy(ttl_s=500.0)
    )
    assert deleted == {"fraud": 2, "recs": 8}
    assert read_window(log, "fraud", 0.0, 1e9).request_ids.tolist() == [
        f"fraud-{i}" for i in range(5, 10)
    ]
    assert read_window(log, "recs", 0.0, 1e9).request_ids.tolist() == ["recs-8", "recs-9"]
    assert purge(log, 1e9) == 7
    assert log.deployments() == []
