"""The rollout job's reading of the inference log: what a canary judgement counts."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.monitoring.window import Window
from modelyard.runner.rollouts import snapshot_of


def window(status: list[int], arms: list[str], scores: list[float]) -> Window:
    count = len(status)
    return Window(
        deployment="checkout",
        start=0.0,
        end=10.0,
        request_ids=np.array([f"r{i}" for i in range(count)], dtype=object),
        ts=np.arange(count, dtype=np.float64),
        version=np.full(count, 2),
        arm=np.array(arms, dtype=object),
        status=np.array(status),
        latency_ms=np.arange(count, dtype=np.float64) + 1.0,
        row_request=np.arange(count),
        outputs={"probabilities": np.array([[1 - s, s] for s in scores])},
    )


def test_snapshot_counts_5xx_as_errors_and_ignores_shadows() -> None:
    snap = snapshot_of(
        window(
            [200, 500, 422, 200, 200],
            ["canary", "canary", "canary", "shadow", "canary"],
            [0.1, np.nan, np.nan, 0.9, 0.4],
        )
    )
    assert (snap.request_count, snap.error_count) == (4, 1)
    assert snap.latency_samples_ms is not None
    assert snap.latency_samples_ms.tolist() == [1.0, 5.0]
    assert snap.prediction_sample is not None
    assert snap.prediction_sample.tolist() == pytest.approx([0.1, 0.4])
    empty = snapshot_of(window([], [], []))
    assert (empty.request_count, empty.latency_samples_ms, empty.prediction_sample) == (
        0,
        None,
        None,
    )
