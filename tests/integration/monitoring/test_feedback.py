"""Feedback on both backends: idempotent posts, late and out-of-order labels, entity joins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from modelyard.errors import ValidationError
from modelyard.monitoring import (
    FeedbackItem,
    FeedbackStore,
    InferenceLogger,
    SqlInferenceLogRepository,
    joined,
    parse_feedback_body,
)
from modelyard.store.database import Database
from modelyard.store.schema import feedback
from modelyard.yard import Yard

DAY = 86_400.0
NOW = 1_750_000_000.0


@pytest.fixture
def db(yard: Yard) -> Database:
    """The migrated metadata database of a fresh home, on each backend."""
    return yard.db


@pytest.fixture
def repository(db: Database) -> SqlInferenceLogRepository:
    """The inference log and its labels in ``db``."""
    return SqlInferenceLogRepository(db)


def log(db: Database, tmp_path: Path, *requests: dict[str, Any]) -> None:
    """Log requests straight into the store; each names ``id``, ``ts`` and ``users``."""
    logger = InferenceLogger(SqlInferenceLogRepository(db), tmp_path / "wal")
    for request in requests:
        users = request.get("users", ["u1"])
        logger.record(
            request_id=request["id"],
            deployment="recs",
            model="ranker",
            version=request.get("version", 1),
            ts=request["ts"],
            status=200,
            latency_ms=2.0,
            rows=len(users),
            arm=request.get("arm", "primary"),
            inputs={"user": users, "x": np.arange(len(users), dtype=np.float64)},
            outputs={"score": np.full(len(users), 0.5)},
        )
    logger.commit()
    logger.close()


def stored_labels(db: Database) -> list[tuple[Any, ...]]:
    with db.read() as conn:
        query = select(feedback.c.request_id, feedback.c.row, feedback.c.label)
        return [tuple(row) for row in conn.execute(query.order_by(feedback.c.id))]


def labels_by_request(window: Any) -> dict[tuple[str, int], Any]:
    """{(request id, row number): label} for the labelled rows of a joined window."""
    out = {}
    request_ids = window.request_ids[window.row_request].tolist()
    seen: dict[int, int] = {}
    for position, label in enumerate(window.labels.tolist()):
        request = int(window.row_request[position])
        row = seen[request] = seen.get(request, -1) + 1
        if label is not None:
            out[(request_ids[position], row)] = label
    return out


def test_the_same_label_posted_three_times_is_stored_once(
    db: Database, repository: SqlInferenceLogRepository
) -> None:
    store = FeedbackStore(repository)
    item = FeedbackItem(1, request_id="r1")
    first = store.post([item], received_at=NOW)
    again = [store.post([item], received_at=NOW + i) for i in (1, 2)]
    assert (first.stored, first.unchanged) == (1, 0)
    assert all((r.stored, r.replaced, r.unchanged) == (0, 0, 1) for r in again)
    with db.read() as conn:
        (received,) = conn.execute(select(feedback.c.received_at)).scalars()
    assert received == NOW  # an unchanged label is not even touched
    assert stored_labels(db) == [("r1", 0, "1")]


def test_a_different_label_for_the_same_target_replaces_the_old_one(
    db: Database, repository: SqlInferenceLogRepository
) -> None:
    store = FeedbackStore(repository)
    store.post([FeedbackItem(0, request_id="r1")])
    result = store.post(
        [FeedbackItem(1, request_id="r1"), FeedbackItem({"paid": True}, request_id="r2")]
    )
    assert (result.received, result.stored, result.replaced, result.unchanged) == (2, 1, 1, 0)
    assert stored_labels(db) == [("r1", 0, "1"), ("r2", 0, '{"paid":true}')]
    result = store.post([FeedbackItem(5, request_id="r3"), FeedbackItem(6, request_id="r3")])
    assert (result.stored, result.unchanged) == (1, 1)  # twice in one post: the later wins
    assert stored_labels(db)[-1] == ("r3", 0, "6")


def test_a_label_seven_days_late_and_before_its_prediction_still_joins(
    db: Database, repository: SqlInferenceLogRepository, tmp_path: Path
) -> None:
    store = FeedbackStore(repository)
    store.post([FeedbackItem("fraud", request_id="early", row=1)], received_at=NOW - 9 * DAY)
    log(
        db,
        tmp_path,
        {"id": "early", "ts": NOW - 8 * DAY, "users": ["u1", "u2"]},
        {"id": "old", "ts": NOW - 7 * DAY},
    )
    store.post([FeedbackItem(1, request_id="old")], received_at=NOW)  # 7 days after the answer
    window = joined(repository, "recs", NOW - 10 * DAY, NOW)
    assert labels_by_request(window) == {("early", 1): "fraud", ("old", 0): 1}
    assert window.labels.tolist() == [None, "fraud", 1]


def test_a_label_joins_every_arm_that_answered_the_request(
    db: Database, repository: SqlInferenceLogRepository, tmp_path: Path
) -> None:
    log(
        db,
        tmp_path,
        {"id": "r1", "ts": 10.0, "version": 1},
        {"id": "r1", "ts": 10.0, "version": 2, "arm": "shadow"},
    )
    FeedbackStore(repository).post(
        parse_feedback_body({"labels": [{"request_id": "r1", "label": 0}]})
    )
    assert joined(repository, "recs", 0.0, 100.0).labels.tolist() == [0, 0]
    only_v2 = joined(repository, "recs", 0.0, 100.0, version=2)
    assert only_v2.arm.tolist() == ["shadow"]
    assert only_v2.labels.tolist() == [0]


def test_an_entity_label_joins_the_latest_prediction_at_or_before_its_time(
    db: Database, repository: SqlInferenceLogRepository, tmp_path: Path
) -> None:
    log(
        db,
        tmp_path,
        {"id": "a", "ts": 100.0, "users": ["u1", "u2"]},
        {"id": "b", "ts": 200.0, "users": ["u1"]},
        {"id": "c", "ts": 300.0, "users": ["u1", "u3"]},
    )
    FeedbackStore(repository).post(
        [
            FeedbackItem("before-any", entity_key="u1", event_time=50.0),
            FeedbackItem("to-a", entity_key="u2", event_time=150.0),
            FeedbackItem("to-b", entity_key="u1", event_time=250.0),
            FeedbackItem("to-b-later", entity_key="u1", event_time=260.0),
            FeedbackItem("to-c", entity_key="u3", event_time=300.0),  # at the prediction's time
            FeedbackItem("unknown", entity_key="u9", event_time=250.0),
        ]
    )
    window = joined(repository, "recs", 0.0, 1000.0, entity_field="user")
    assert labels_by_request(window) == {("a", 1): "to-a", ("b", 0): "to-b", ("c", 1): "to-c"}
    # The window ends before c: an event after c belongs to c, outside the window.
    FeedbackStore(repository).post([FeedbackItem("to-c-too", entity_key="u1", event_time=350.0)])
    early = joined(repository, "recs", 0.0, 250.0, entity_field="user")
    assert labels_by_request(early) == {("a", 1): "to-a", ("b", 0): "to-b"}
    short = joined(repository, "recs", 0.0, 1000.0, entity_field="user", entity_horizon_s=20.0)
    assert labels_by_request(short) == {("c", 1): "to-c"}


def test_a_request_label_wins_over_an_entity_label(
    db: Database, repository: SqlInferenceLogRepository, tmp_path: Path
) -> None:
    log(db, tmp_path, {"id": "a", "ts": 100.0, "users": ["u1"]})
    FeedbackStore(repository).post(
        [
            FeedbackItem("by-entity", entity_key="u1", event_time=110.0),
            FeedbackItem("by-request", request_id="a"),
        ]
    )
    window = joined(repository, "recs", 0.0, 1000.0, entity_field="user")
    assert window.labels.tolist() == ["by-request"]


def test_an_entity_event_seven_days_ago_joins(
    db: Database, repository: SqlInferenceLogRepository, tmp_path: Path
) -> None:
    log(db, tmp_path, {"id": "a", "ts": NOW - 7 * DAY - 60.0, "users": [42]})
    FeedbackStore(repository).post(
        parse_feedback_body(
            {"entity_key": 42, "event_time": NOW - 7 * DAY, "outcome": {"bought": True}}
        ),
        received_at=NOW,
    )
    window = joined(repository, "recs", NOW - 8 * DAY, NOW, entity_field="user")
    assert window.labels.tolist() == [{"bought": True}]


def test_an_entity_field_that_was_not_logged_is_named(
    db: Database, repository: SqlInferenceLogRepository, tmp_path: Path
) -> None:
    log(db, tmp_path, {"id": "a", "ts": 1.0})
    with pytest.raises(ValidationError, match="entity_field 'customer' is not among the logged"):
        joined(repository, "recs", 0.0, 10.0, entity_field="customer")


def test_a_bad_item_stores_nothing(db: Database, repository: SqlInferenceLogRepository) -> None:
    store = FeedbackStore(repository)
    with pytest.raises(ValidationError, match=r"labels\[1\]\.label must be a number"):
        store.post([FeedbackItem(1, request_id="ok"), FeedbackItem(float("nan"), request_id="x")])
    with pytest.raises(ValidationError, match=r"labels\[0\]\.row must be an integer"):
        store.post(parse_feedback_body({"labels": [{"request_id": "a", "row": -2, "label": 1}]}))
    assert stored_labels(db) == []
