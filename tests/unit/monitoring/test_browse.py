"""Listing and showing logged requests (``inference_log.browse``) on the in-memory log:
filters, newest first, the limit, the early stop, and one request with its rows."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from modelyard.errors import ValidationError
from modelyard.monitoring import FeedbackItem, FeedbackStore, InMemoryInferenceLogRepository
from modelyard.monitoring.inference_log.browse import (
    RequestQuery,
    list_requests,
    search_requests,
    show_request,
)
from modelyard.monitoring.inference_log.storage import write_records


def record(request_id: str, ts: float, **fields: Any) -> dict[str, Any]:
    rows = fields.pop("rows", 1)
    base: dict[str, Any] = {
        "request_id": request_id,
        "ts": ts,
        "deployment": "bc",
        "model": "bc",
        "version": 1,
        "arm": "primary",
        "status": 200,
        "latency_ms": 2.5,
        "rows": rows,
        "inputs": {"age": np.arange(rows, dtype=np.float64), "bmi": np.full(rows, 0.5)},
        "outputs": {"y": np.full(rows, 7.0)},
    }
    return {**base, **fields}


@pytest.fixture
def log() -> InMemoryInferenceLogRepository:
    log = InMemoryInferenceLogRepository()
    write_records(
        log,
        [
            record("a1", 100.0),
            record("a2", 110.0, version=2),
            record("b1", 120.0, status=422, error="invalid_input", inputs=None, outputs=None),
            record("a3", 130.0, arm="canary", version=2),
            record("a4", 140.0, rows=2),
            record("other", 135.0, deployment="elsewhere"),
        ],
    )
    FeedbackStore(log).post(
        [FeedbackItem(1, request_id="a2"), FeedbackItem(0, request_id="a4", row=1)]
    )
    return log


def ids(log: InMemoryInferenceLogRepository, **query: Any) -> list[str]:
    return [r.request_id for r in list_requests(log, RequestQuery("bc", **query))]


def test_requests_come_newest_first_with_their_labels(log: InMemoryInferenceLogRepository) -> None:
    found = list_requests(log, RequestQuery("bc"))
    assert [r.request_id for r in found] == ["a4", "a3", "b1", "a2", "a1"]
    assert found[0].labels == {1: 0}
    assert found[3].labels == {0: 1}
    assert found[2].error == "invalid_input"
    assert found[0].document()["labels"] == {"1": 0}


def test_each_filter_narrows_the_list(log: InMemoryInferenceLogRepository) -> None:
    assert ids(log, since=110.0, until=135.0) == ["a3", "b1", "a2"]
    assert ids(log, version=2) == ["a3", "a2"]
    assert ids(log, arm="canary") == ["a3"]
    assert ids(log, status="error") == ["b1"]
    assert ids(log, status=200) == ["a4", "a3", "a2", "a1"]
    assert ids(log, status="ok", labelled=True) == ["a4", "a2"]
    assert ids(log, labelled=False) == ["a3", "b1", "a1"]
    assert ids(log, request_id_prefix="b") == ["b1"]
    assert ids(log, limit=2) == ["a4", "a3"]


def test_the_newest_are_found_across_pages_of_overlapping_batches() -> None:
    log = InMemoryInferenceLogRepository()
    # Two workers' batches: one starts earlier but runs later than the other.
    write_records(log, [record("w1-0", 100.0), record("w1-1", 150.0)])
    write_records(log, [record("w2-0", 120.0), record("w2-1", 121.0)])
    for page in (1, 2, 10):
        found = list_requests(log, RequestQuery("bc", limit=2), page=page)
        assert [r.request_id for r in found] == ["w1-1", "w2-1"], page


def test_a_search_on_a_budget_says_how_far_back_it_read() -> None:
    log = InMemoryInferenceLogRepository()
    for minute in range(10):  # ten batches a minute apart, the only error in the oldest
        status = 500 if minute == 0 else 200
        write_records(log, [record(f"m{minute}", minute * 60.0 + 1.0, status=status)])
    query = RequestQuery("bc", status="error")
    stopped = search_requests(log, query, page=2, max_records=4)
    assert stopped.requests == []
    assert stopped.searched_from is not None
    # every record from searched_from on was read: minutes 6 to 9 (the floor, minute 6's
    # batch at 361 s, plus a batch's span)
    assert 361.0 + 60.0 < stopped.searched_from < 421.0 + 1e-6
    rest = search_requests(log, replace(query, until=stopped.searched_from), page=2)
    assert [r.request_id for r in rest.requests] == ["m0"]
    assert rest.searched_from is None
    whole = search_requests(log, query, page=2, max_records=1_000)
    assert [r.request_id for r in whole.requests] == ["m0"]
    assert whole.searched_from is None


def test_a_bad_query_says_what_is_wrong() -> None:
    with pytest.raises(ValidationError, match="limit must be from 1"):
        RequestQuery("bc", limit=0)
    with pytest.raises(
        ValidationError, match="status must be an HTTP status code, 'ok' or 'error'"
    ):
        RequestQuery("bc", status="bad")
    with pytest.raises(ValidationError, match="the range is empty"):
        RequestQuery("bc", since=10.0, until=5.0)


def test_one_request_shows_its_inputs_features_outputs_and_labels(
    log: InMemoryInferenceLogRepository,
) -> None:
    [detail] = show_request(log, "bc", "a4", features=("bmi",))
    assert detail.request.rows == 2
    assert detail.inputs == {"age": [0.0, 1.0]}
    assert detail.features == {"bmi": [0.5, 0.5]}
    assert detail.outputs == {"y": [7.0, 7.0]}
    assert detail.request.labels == {1: 0}
    assert detail.document()["features"] == {"bmi": [0.5, 0.5]}
    assert show_request(log, "bc", "nope") == []
    assert show_request(log, "elsewhere", "a4") == []
