"""A window read part by part from the real store (SQLite, PostgreSQL) measures what the
whole read measures, and a short window reads only the batches that overlap it."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.monitoring import (
    FeedbackStore,
    SqlInferenceLogRepository,
    joined,
    parse_feedback_body,
    write_records,
)
from modelyard.monitoring.feedback_join import joined_parts
from modelyard.monitoring.inference_log.storage import read_payloads, scan_window
from modelyard.monitoring.live_metrics import snapshot
from modelyard.monitoring.window_figures import RELATIVE_ACCURACY, measure
from modelyard.yard import Yard

T0 = 1_750_000_000.0


@pytest.fixture
def repository(yard: Yard) -> SqlInferenceLogRepository:
    return SqlInferenceLogRepository(yard.db)


def log_batches(repository: SqlInferenceLogRepository, batches: int, per: int) -> None:
    """``batches`` stored batches of ``per`` requests, batch ``b`` over ``[10 b, 10 b + 9]``
    seconds after T0; versions 1 and 2, some 500s and 422s, one row each."""
    rng = np.random.default_rng(0)
    for number in range(batches):
        score = rng.uniform(size=per)
        write_records(
            repository,
            [
                {
                    "request_id": f"b{number}-{i}",
                    "ts": T0 + 10 * number + 9 * i / max(per - 1, 1),
                    "deployment": "fraud",
                    "model": "m",
                    "version": 1 + (number + i) % 2,
                    "status": int(rng.choice([200, 200, 200, 422, 500])),
                    "latency_ms": float(rng.lognormal(1.0, 0.7)),
                    "rows": 1,
                    "inputs": {"amount": [float(rng.gamma(2.0, 10.0))]},
                    "outputs": {"label": [int(score[i] >= 0.5)], "score": [float(score[i])]},
                }
                for i in range(per)
            ],
        )


def test_a_window_in_parts_measures_what_the_whole_window_measures(
    repository: SqlInferenceLogRepository,
) -> None:
    log_batches(repository, 30, 12)
    rng = np.random.default_rng(1)
    labels = [
        {"request_id": f"b{b}-{i}", "label": int(rng.uniform() < 0.5)}
        for b in range(30)
        for i in range(12)
        if rng.uniform() < 0.6
    ]
    FeedbackStore(repository).post(parse_feedback_body({"labels": labels}))
    start, end = T0 + 5, T0 + 250  # cuts through the first and the last batch it holds
    whole = joined(repository, "fraud", start, end)
    parts = list(joined_parts(repository, "fraud", start, end, page=4))
    assert len(parts) > 2
    assert sorted(r for p in parts for r in p.request_ids.tolist()) == sorted(
        whole.request_ids.tolist()
    )
    expected = snapshot(whole, by="version")
    measured = measure(parts, "fraud", start, end)
    for key, group in [*expected.groups.items(), ("all", expected.overall)]:
        got = measured.metrics.overall if key == "all" else measured.metrics.groups[key]
        assert got.traffic.requests == group.traffic.requests
        assert got.traffic.errors == group.traffic.errors
        assert got.traffic.client_errors == group.traffic.client_errors
        assert got.traffic.max_ms == group.traffic.max_ms
        assert got.traffic.p50_ms == pytest.approx(group.traffic.p50_ms, rel=0.3)
        assert group.quality is not None
        assert got.quality is not None
        assert got.quality.labelled == group.quality.labelled
        for name in ("accuracy", "precision", "recall", "f1", "log_loss"):
            assert got.quality.metrics[name] == pytest.approx(group.quality.metrics[name])
    # the sample holds every row of so short a window
    assert measured.sample.rows == whole.rows
    assert sorted(measured.sample.inputs["amount"].tolist()) == sorted(
        whole.inputs["amount"].tolist()
    )
    assert RELATIVE_ACCURACY == 0.005


def test_a_short_window_reads_only_the_batches_that_overlap_it(
    repository: SqlInferenceLogRepository,
) -> None:
    log_batches(repository, 60, 4)  # two payloads (versions) per 10 s
    # [T0 + 300, T0 + 305) lies in batch 30 alone; batches 24-29 begin less than 60 s
    # before it, but ended before it began
    found = read_payloads(repository, "fraud", T0 + 300, T0 + 305)
    assert {ts for p in found for ts in p.ts} <= {T0 + 300 + 3 * i for i in range(4)}
    assert len(found) == 2
    parts = list(scan_window(repository, "fraud", T0 + 300, T0 + 305, page=1))
    assert sum(p.requests for p in parts) == 2  # ts 300 and 303
