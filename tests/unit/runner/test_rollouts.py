"""The rollout job's reading of the inference log: what a canary judgement counts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from modelyard.monitoring import (
    FeedbackItem,
    FeedbackStore,
    InMemoryInferenceLogRepository,
    write_records,
)
from modelyard.monitoring.window import Window
from modelyard.registry.refs import ModelRef
from modelyard.runner.rollouts import InferenceLogMetrics, snapshot_of


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


class Thresholds:
    """A stand-in champion: class 1 when ``x`` exceeds its cut."""

    flavour = "test"

    def __init__(self, cut: float) -> None:
        from modelyard.registry.signature import FieldSpec, Signature

        self.signature = Signature((FieldSpec("x", "float64"),))
        self.cut = cut

    def predict(self, batch: Any) -> dict[str, np.ndarray]:
        return {"label": (np.asarray(batch["x"]) > self.cut).astype(np.int64)}


def test_the_canary_is_judged_on_the_champions_decisions_and_its_labels() -> None:
    log = InMemoryInferenceLogRepository()
    x = np.linspace(0.0, 1.0, 100)
    write_records(
        log,
        [
            {
                "request_id": f"r{i}",
                "ts": 1.0 + i * 0.01,
                "deployment": "fraud",
                "model": "clf",
                "version": 2,
                "arm": "canary",
                "status": 200,
                "latency_ms": 2.0,
                "rows": 1,
                "inputs": {"x": x[i : i + 1]},
                "outputs": {"label": np.array([int(x[i] > 0.5)])},
            }
            for i in range(100)
        ],
    )
    # Feedback for the first 40 requests: the truth cuts at 0.3, so 0.3 < x <= 0.5 is wrong.
    FeedbackStore(log).post(
        [FeedbackItem(int(x[i] > 0.3), request_id=f"r{i}") for i in range(40)], received_at=5.0
    )
    metrics = InferenceLogMetrics(log, lambda ref: Thresholds(0.4), max_rows=1_000)  # type: ignore[arg-type, return-value]
    traffic = metrics("fraud", 2, 0.0, 10.0, compare_with=ModelRef("clf", version=1))
    assert traffic.request_count == 100
    # 0.4 < x <= 0.5: the champion says 1 where the canary said 0.
    assert traffic.decisions_compared == 100
    assert traffic.decisions_changed == int(((x > 0.4) & (x <= 0.5)).sum())
    assert traffic.task == "classification"
    assert traffic.losses is not None
    assert traffic.losses.size == 40
    assert traffic.losses.sum() == int(((x[:40] > 0.3) & (x[:40] <= 0.5)).sum())
    alone = metrics("fraud", 2, 0.0, 10.0)
    assert alone.decisions_compared == 0
    sampled = InferenceLogMetrics(log, lambda ref: Thresholds(0.4), max_rows=30)  # type: ignore[arg-type, return-value]
    assert sampled("fraud", 2, 0.0, 10.0, compare_with=ModelRef("clf", 1)).decisions_compared == 30


class Broken(Thresholds):
    def predict(self, batch: Any) -> dict[str, np.ndarray]:
        raise ValueError("Input X contains NaN.")


def test_a_champion_that_fails_on_the_canarys_inputs_skips_only_the_decisions() -> None:
    log = InMemoryInferenceLogRepository()
    write_records(
        log,
        [
            {
                "request_id": "r1",
                "ts": 1.0,
                "deployment": "fraud",
                "model": "clf",
                "version": 2,
                "arm": "canary",
                "status": 200,
                "latency_ms": 2.0,
                "rows": 1,
                "inputs": {"x": np.array([0.5])},
                "outputs": {"label": np.array([1])},
            }
        ],
    )
    metrics = InferenceLogMetrics(log, lambda ref: Broken(0.4))  # type: ignore[arg-type, return-value]
    traffic = metrics("fraud", 2, 0.0, 10.0, compare_with=ModelRef("clf", version=1))
    assert (traffic.request_count, traffic.decisions_compared) == (1, 0)
