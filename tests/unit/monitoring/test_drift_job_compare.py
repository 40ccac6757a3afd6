"""``compare``: which live columns a drift check reads, and what it refuses."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.errors import ValidationError
from modelyard.monitoring.drift_job import Reference, compare
from modelyard.monitoring.window import Window


def window(inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> Window:
    n = len(next(iter(inputs.values())))
    return Window(
        deployment="fraud-api",
        start=0.0,
        end=60.0,
        request_ids=np.array([f"r{i}" for i in range(n)], dtype=object),
        ts=np.linspace(0, 60, n, endpoint=False),
        version=np.ones(n, dtype=np.int64),
        arm=np.full(n, "champion", dtype=object),
        status=np.full(n, 200),
        latency_ms=np.ones(n),
        row_request=np.arange(n),
        inputs=inputs,
        outputs=outputs,
    )


@pytest.fixture
def reference() -> Reference:
    rng = np.random.default_rng(0)
    return Reference(
        "fraud",
        1,
        {"a": rng.normal(size=1000), "b": rng.normal(size=1000)},
        {"label": rng.integers(0, 2, 1000), "score": rng.uniform(size=1000)},
        {"roc_auc": 0.9},
    )


def test_drift_reads_the_reference_features_and_the_score(reference: Reference) -> None:
    rng = np.random.default_rng(1)
    live = window(
        {"a": rng.normal(size=300) + 1.0, "b": rng.normal(size=300), "extra": np.ones(300)},
        {"label": rng.integers(0, 2, 300), "probabilities": np.full((300, 2), 0.5)},
    )
    report = compare(reference, live)
    assert [f.name for f in report.features] == ["a", "b"]
    assert report.drifted_features == ("a",)
    assert report.prediction_drift is not None
    assert report.prediction_drift.drifted  # every live score is 0.5


def test_missing_values_in_live_logs_are_left_out_by_default(reference: Reference) -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(size=300)
    a[::10] = np.nan
    report = compare(reference, window({"a": a, "b": rng.normal(size=300)}, {}))
    assert report.prediction_drift is None
    assert not report.dataset_drift


def test_a_window_without_a_reference_feature_is_refused(reference: Reference) -> None:
    live = window({"a": np.zeros(50), "c": np.zeros(50)}, {})
    with pytest.raises(
        ValidationError, match="lacks reference feature\\(s\\) b; inputs logged: a, c"
    ):
        compare(reference, live)
