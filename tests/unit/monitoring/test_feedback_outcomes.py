"""What a posted label matched (joined, pending, refused, deferred) and when a pending one
expires: the pure decisions on simulated time, then ``FeedbackStore`` and the serving
worker's ``FeedbackReceiver`` on the in-memory log with a simulated clock."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from modelyard.errors import NotFoundError
from modelyard.monitoring import FeedbackItem, FeedbackStore, InMemoryInferenceLogRepository
from modelyard.monitoring.feedback_outcomes import (
    LabelTarget,
    PendingLabels,
    Waited,
    judge,
    settle,
)
from modelyard.monitoring.inference_log.repository import KnownRequest
from modelyard.monitoring.inference_log.storage import write_records
from modelyard.serving.recording import FeedbackReceiver


def served(
    log: InMemoryInferenceLogRepository, request_id: str, *, rows: int = 2, status: int = 200
) -> None:
    record: dict[str, Any] = {
        "request_id": request_id,
        "ts": 100.0,
        "deployment": "bc",
        "model": "bc",
        "version": 1,
        "status": status,
        "latency_ms": 1.0,
        "rows": rows,
    }
    if status < 400:
        record["inputs"] = {"x": np.arange(rows, dtype=np.float64)}
        record["outputs"] = {"y": np.zeros(rows)}
    write_records(log, [record])


# -- the pure decisions -----------------------------------------------------------------------


def test_each_target_is_judged_by_what_the_request_index_knows() -> None:
    known = {"ok": KnownRequest(rows=2, status=200), "failed": KnownRequest(rows=1, status=422)}
    outcomes = judge(
        [
            LabelTarget("ok", 1),
            LabelTarget("ok", 2),
            LabelTarget("failed"),
            LabelTarget("typo"),
            LabelTarget(None, entity_key="user-7"),
        ],
        known,
        now=1000.0,
        wait_s=60.0,
    )
    assert [o.outcome for o in outcomes] == ["joined", "refused", "refused", "pending", "deferred"]
    assert outcomes[1].reason is not None
    assert "row 2 is out of range" in outcomes[1].reason
    assert "has 2 row(s)" in outcomes[1].reason
    assert outcomes[2].reason is not None
    assert "status 422" in outcomes[2].reason
    assert outcomes[3].expires_at == 1060.0
    assert outcomes[0].expires_at is None


def test_a_request_with_unknown_row_count_takes_any_row() -> None:
    [outcome] = judge([LabelTarget("r", 7)], {"r": KnownRequest(0, 200)}, 0.0, 60.0)
    assert outcome.outcome == "joined"


def test_pending_labels_fall_due_after_their_wait_on_simulated_time() -> None:
    pending = PendingLabels(wait_s=60.0)
    assert pending.add(["a", "b"], now=0.0) == []
    pending.add(["a"], now=30.0)  # a second label for "a": its wait runs from the first
    pending.add(["c"], now=30.0)
    assert pending.due(59.9) == []
    assert pending.due(60.0) == [Waited("a", 2), Waited("b", 1)]
    assert len(pending) == 1
    assert pending.due(89.9) == []
    assert pending.due(200.0) == [Waited("c", 1)]
    assert pending.due(1e9) == []


def test_pending_labels_past_capacity_let_the_oldest_go_early() -> None:
    pending = PendingLabels(wait_s=60.0, capacity=2)
    assert pending.add(["a", "b"], 0.0) == []
    assert pending.add(["c"], 1.0) == [Waited("a", 1)]
    assert len(pending) == 2


def test_pending_labels_refuse_a_negative_wait() -> None:
    with pytest.raises(ValueError, match="wait_s must be >= 0"):
        PendingLabels(wait_s=-1.0)


def test_settling_counts_late_joins_and_expiries_by_label() -> None:
    ended = [Waited("came", 2), Waited("never", 3)]
    assert settle(ended, {"came": KnownRequest(2, 200)}) == (2, 3)


# -- FeedbackStore ----------------------------------------------------------------------------


def test_a_post_reports_each_label_and_stores_all_but_the_refused() -> None:
    log = InMemoryInferenceLogRepository()
    served(log, "r1")
    served(log, "bad", status=422)
    store = FeedbackStore(log, wait_s=30.0)
    result = store.post(
        [
            FeedbackItem(1, request_id="r1"),
            FeedbackItem(1, request_id="r1", row=5),
            FeedbackItem(1, request_id="bad"),
            FeedbackItem(0, request_id="early"),
            FeedbackItem(0, entity_key="u1", event_time=5.0),
        ],
        received_at=10.0,
    )
    assert (result.joined, result.pending, result.refused, result.deferred) == (1, 1, 2, 1)
    assert (result.received, result.stored) == (5, 3)
    assert [label.outcome for label in result.labels] == [
        "joined",
        "refused",
        "refused",
        "pending",
        "deferred",
    ]
    assert result.labels[3].expires_at == 40.0
    assert set(log.request_labels({"r1", "bad", "early"})) == {("r1", 0), ("early", 0)}
    document = result.document()
    assert document["labels"][0] == {"outcome": "joined", "request_id": "r1", "row": 0}
    assert document["labels"][4]["entity_key"] == "u1"


def test_the_same_label_again_is_unchanged_and_still_joined() -> None:
    log = InMemoryInferenceLogRepository()
    served(log, "r1")
    store = FeedbackStore(log)
    store.post([FeedbackItem(1, request_id="r1")], received_at=1.0)
    again = store.post([FeedbackItem(1, request_id="r1")], received_at=2.0)
    assert (again.stored, again.replaced, again.unchanged, again.joined) == (0, 0, 1, 1)


def test_require_known_names_the_unknown_id_and_stores_nothing() -> None:
    log = InMemoryInferenceLogRepository()
    served(log, "r1")
    store = FeedbackStore(log)
    items = [FeedbackItem(1, request_id="r1"), FeedbackItem(1, request_id="r-typo")]
    with pytest.raises(NotFoundError, match=r"labels\[1\]\.request_id: .*'r-typo'"):
        store.post(items, require_known=True)
    assert log.request_labels({"r1", "r-typo"}) == {}
    assert store.post(items[:1], require_known=True).joined == 1


# -- the serving worker's receiver --------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_receiver_counts_outcomes_and_settles_pending_labels_after_the_wait() -> None:
    log = InMemoryInferenceLogRepository()
    clock = Clock()
    receiver = FeedbackReceiver(log, 100, wait_s=5.0, clock=clock)
    result = receiver(
        {"labels": [{"request_id": "late", "label": 1}, {"request_id": "never", "label": 0}]}
    )
    assert result.pending == 2
    assert receiver.waiting == 2
    served(log, "late")  # the supervisor stores its prediction after the label came
    clock.now += 4.9
    receiver.check_pending()
    assert receiver.waiting == 2
    clock.now += 0.1
    receiver.check_pending()
    assert receiver.waiting == 0
    counts = receiver.counts()
    assert counts[("pending",)] == 2
    assert counts[("joined_late",)] == 1
    assert counts[("expired",)] == 1


def test_the_receiver_reads_require_known_from_the_body() -> None:
    receiver = FeedbackReceiver(InMemoryInferenceLogRepository(), 100, clock=Clock())
    with pytest.raises(NotFoundError, match="'nope'"):
        receiver({"request_id": "nope", "label": 1, "require_known": True})
    assert receiver.counts()[("pending",)] == 0
