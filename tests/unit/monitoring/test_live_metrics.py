"""Live metrics against numpy and scikit-learn, on windows built by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import CollectorRegistry
from sklearn import metrics as skm

from modelyard.errors import ValidationError
from modelyard.monitoring.live_metrics import (
    LiveMetricsExporter,
    describe_predictions,
    infer_task,
    over_time,
    quality_metrics,
    snapshot,
    traffic_metrics,
)
from modelyard.monitoring.window import Window, empty_window


def make_window(
    status: list[int] | np.ndarray,
    latency: list[float] | np.ndarray,
    rows_per_request: list[int] | np.ndarray | None = None,
    *,
    ts: np.ndarray | None = None,
    version: np.ndarray | None = None,
    outputs: dict[str, np.ndarray] | None = None,
    labels: np.ndarray | None = None,
    start: float = 0.0,
    end: float = 100.0,
) -> Window:
    n = len(status)
    per = np.ones(n, dtype=np.int64) if rows_per_request is None else np.asarray(rows_per_request)
    return Window(
        deployment="fraud-api",
        start=start,
        end=end,
        request_ids=np.array([f"r{i}" for i in range(n)], dtype=object),
        ts=np.linspace(start, end, n, endpoint=False) if ts is None else ts,
        version=np.ones(n, dtype=np.int64) if version is None else version,
        arm=np.where(version == 2, "canary", "champion").astype(object)
        if version is not None
        else np.full(n, "champion", dtype=object),
        status=np.asarray(status, dtype=np.int64),
        latency_ms=np.asarray(latency, dtype=np.float64),
        row_request=np.repeat(np.arange(n), per),
        outputs=outputs or {},
        labels=labels,
    )


def classified(rng: np.random.Generator, n: int, labelled: float = 0.7) -> Window:
    score = rng.uniform(size=n)
    truth = (rng.uniform(size=n) < score).astype(np.float64)
    labels = np.where(rng.uniform(size=n) < labelled, truth, np.nan)
    return make_window(
        np.full(n, 200),
        rng.gamma(2.0, 5.0, n),
        outputs={"label": (score >= 0.5).astype(np.int64), "score": score},
        labels=labels,
    )


# --- traffic ------------------------------------------------------------------------------


def test_traffic_counts_5xx_as_errors_and_4xx_apart() -> None:
    status = [200, 200, 503, 500, 404, 422, 200, 200, 200, 200]
    latency = [5.0, 7.0, 100.0, 90.0, 1.0, 2.0, 6.0, 8.0, 9.0, 10.0]
    found = traffic_metrics(make_window(status, latency, [2, 1, 0, 0, 0, 0, 1, 1, 3, 1]), by=None)
    all_ = found["all"]
    assert all_.requests == 10
    assert all_.rows == 9
    assert all_.errors == 2
    assert all_.error_rate == pytest.approx(0.2)
    assert all_.client_errors == 2
    assert all_.client_error_rate == pytest.approx(0.2)
    assert all_.requests_per_s == pytest.approx(0.1)
    for q, value in ((50, all_.p50_ms), (90, all_.p90_ms), (99, all_.p99_ms)):
        assert value == pytest.approx(np.percentile(latency, q))
    assert all_.max_ms == 100.0


def test_traffic_groups_by_version_and_by_arm() -> None:
    version = np.array([1, 1, 2, 1, 2, 2, 2])
    window = make_window(
        [200, 500, 200, 200, 503, 503, 200], [1, 2, 3, 4, 5, 6, 7], version=version
    )
    by_version = traffic_metrics(window)
    assert sorted(by_version) == ["1", "2"]
    assert by_version["1"].requests == 3
    assert by_version["1"].error_rate == pytest.approx(1 / 3)
    assert by_version["2"].error_rate == pytest.approx(0.5)
    assert by_version["2"].p50_ms == pytest.approx(np.percentile([3, 5, 6, 7], 50))
    by_arm = traffic_metrics(window, by="arm")
    assert sorted(by_arm) == ["canary", "champion"]
    assert by_arm["canary"].requests == 4


def test_an_empty_window_has_no_latency_and_no_errors() -> None:
    found = snapshot(empty_window("fraud-api", 0.0, 60.0))
    assert found.groups == {}
    traffic = found.overall.traffic
    assert (traffic.requests, traffic.error_rate, traffic.p99_ms, traffic.max_ms) == (
        0,
        0,
        None,
        None,
    )
    assert found.overall.quality is None


@settings(deadline=None, max_examples=60)
@given(
    data=st.lists(
        st.tuples(
            st.sampled_from([200, 201, 400, 429, 500, 503]),
            st.floats(0, 1e4, allow_nan=False),
            st.integers(1, 3),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_groups_add_up_to_the_whole(data: list[tuple[int, float, int]]) -> None:
    status, latency, version = (np.array(column) for column in zip(*data, strict=True))
    found = snapshot(make_window(status, latency, version=version))
    parts = found.groups.values()
    assert sum(g.traffic.requests for g in parts) == found.overall.traffic.requests
    assert sum(g.traffic.errors for g in parts) == found.overall.traffic.errors
    assert 0.0 <= found.overall.traffic.error_rate <= 1.0
    assert found.overall.traffic.p99_ms is not None
    assert min(latency) <= found.overall.traffic.p99_ms <= max(latency)


def test_prediction_summaries() -> None:
    numeric = describe_predictions(np.array([0.1, 0.2, np.nan, 0.9]))
    assert numeric["count"] == 3
    assert numeric["mean"] == pytest.approx(0.4)
    labels = describe_predictions(np.array([1, 0, 1, 1]))
    assert labels == {"kind": "categorical", "count": 4, "shares": {"1": 0.75, "0": 0.25}}
    window = make_window(
        [200, 200], [1, 1], outputs={"probabilities": np.array([[0.8, 0.2], [0.3, 0.7]])}
    )
    summary = traffic_metrics(window, by=None)["all"].predictions
    assert summary["score"]["mean"] == pytest.approx(0.45)


# --- quality ------------------------------------------------------------------------------


def test_classification_metrics_match_sklearn() -> None:
    window = classified(np.random.default_rng(0), 400)
    found = quality_metrics(window)
    assert found is not None
    assert labels_known(window) == found.labelled
    assert found.coverage == pytest.approx(found.labelled / 400)
    keep = ~np.isnan(window.labels.astype(float))  # type: ignore[union-attr]
    truth = window.labels[keep].astype(int)  # type: ignore[index]
    predicted = window.outputs["label"][keep]
    score = window.outputs["score"][keep]
    assert found.task == "classification"
    assert found.metrics["accuracy"] == pytest.approx(skm.accuracy_score(truth, predicted))
    assert found.metrics["precision"] == pytest.approx(skm.precision_score(truth, predicted))
    assert found.metrics["recall"] == pytest.approx(skm.recall_score(truth, predicted))
    assert found.metrics["f1"] == pytest.approx(skm.f1_score(truth, predicted))
    assert found.metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(truth, score))
    assert found.metrics["log_loss"] == pytest.approx(skm.log_loss(truth, score))


def labels_known(window: Window) -> int:
    assert window.labels is not None
    return int((~np.isnan(window.labels.astype(float))).sum())


def test_string_labels_from_feedback_and_missing_ones() -> None:
    labels = np.array(["fraud", None, "ok", "ok", "fraud", {"refund": 3}], dtype=object)
    window = make_window(
        [200] * 6,
        [1] * 6,
        outputs={"label": np.array(["fraud", "ok", "ok", "fraud", "fraud", "ok"], dtype=object)},
        labels=labels,
    )
    found = quality_metrics(window)
    assert found is not None
    assert found.labelled == 4  # None and the outcome dict are not class labels
    assert found.metrics["accuracy"] == pytest.approx(0.75)
    # "ok" sorts last, so it is the positive class: precision 1/1, recall 1/2
    assert found.metrics["precision"] == pytest.approx(1.0)
    assert found.metrics["recall"] == pytest.approx(0.5)
    assert "roc_auc" not in found.metrics  # no score output


def test_float_labels_match_integer_predictions_and_auc_needs_both_classes() -> None:
    window = make_window(
        [200] * 4,
        [1] * 4,
        outputs={"label": np.array([1, 1, 0, 1]), "score": np.array([0.9, 0.8, 0.2, 0.6])},
        labels=np.array([1.0, 1.0, 1.0, 1.0]),
    )
    found = quality_metrics(window)
    assert found is not None
    assert found.metrics["accuracy"] == pytest.approx(0.75)
    assert "roc_auc" not in found.metrics
    assert found.metrics["log_loss"] == pytest.approx(
        skm.log_loss([1, 1, 1, 1], [0.9, 0.8, 0.2, 0.6], labels=[0, 1])
    )


def test_multiclass_uses_macro_averages() -> None:
    truth = np.array([0, 1, 2, 2, 1, 0])
    predicted = np.array([0, 2, 2, 2, 1, 1])
    window = make_window(
        [200] * 6, [1] * 6, outputs={"label": predicted}, labels=truth.astype(np.float64)
    )
    found = quality_metrics(window)
    assert found is not None
    expected = skm.precision_score(truth, predicted, average="macro", zero_division=0)
    assert found.metrics["precision"] == pytest.approx(expected)
    assert "log_loss" not in found.metrics


def test_regression_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(1)
    predicted = rng.normal(size=50)
    truth = predicted + rng.normal(scale=0.3, size=50)
    labels = truth.astype(object)
    labels[::5] = None
    window = make_window([200] * 50, [1] * 50, outputs={"prediction": predicted}, labels=labels)
    found = quality_metrics(window)
    assert found is not None
    keep = np.array([v is not None for v in labels])
    assert found.task == "regression"
    assert found.labelled == 40
    assert found.metrics["mae"] == pytest.approx(
        skm.mean_absolute_error(truth[keep], predicted[keep])
    )
    assert found.metrics["rmse"] == pytest.approx(
        math.sqrt(skm.mean_squared_error(truth[keep], predicted[keep]))
    )


def test_no_labels_no_quality_and_unlabelled_rows_give_empty_metrics() -> None:
    outputs = {"prediction": np.array([1.0, 2.0])}
    assert quality_metrics(make_window([200, 200], [1, 1], outputs=outputs)) is None
    window = make_window([200, 200], [1, 1], outputs=outputs, labels=np.array([np.nan, np.nan]))
    found = quality_metrics(window)
    assert found is not None
    assert (found.labelled, found.coverage, found.metrics) == (0, 0.0, {})


def test_task_inference_and_a_task_without_its_output() -> None:
    assert infer_task({"label": [1]}) == "classification"
    assert infer_task({"probabilities": np.array([[0.2, 0.8]])}) == "classification"
    assert infer_task({"prediction": [1.0]}) == "regression"
    assert infer_task({"embedding": [1.0]}) is None
    window = make_window([200], [1], outputs={"label": np.array([1])}, labels=np.array([1.0]))
    with pytest.raises(ValidationError, match="regression metrics need an output named prediction"):
        quality_metrics(window, task="regression")


# --- snapshots over time ------------------------------------------------------------------


def test_over_time_buckets_cover_the_window_including_empty_ones() -> None:
    ts = np.array([1.0, 2.0, 3.0, 25.0, 26.0, 59.0])
    window = make_window([200, 500, 200, 200, 200, 503], [1, 2, 3, 4, 5, 6], ts=ts, end=60.0)
    buckets = over_time(window, 10.0)
    assert [b.start for b in buckets] == [0, 10, 20, 30, 40, 50]
    assert [b.end for b in buckets] == [10, 20, 30, 40, 50, 60]
    assert [b.overall.traffic.requests for b in buckets] == [3, 0, 2, 0, 0, 1]
    assert buckets[0].overall.traffic.error_rate == pytest.approx(1 / 3)
    assert buckets[1].overall.traffic.p99_ms is None
    with pytest.raises(ValidationError, match="bucket_s must be > 0"):
        over_time(window, 0)


def test_snapshot_is_json_ready() -> None:
    window = classified(np.random.default_rng(2), 50)
    data = snapshot(window).to_dict()
    text = json.dumps(data)
    assert json.loads(text)["groups"]["1"]["quality"]["task"] == "classification"


# --- Prometheus ---------------------------------------------------------------------------


def test_exporter_publishes_the_latest_snapshot_only() -> None:
    registry = CollectorRegistry()
    exporter = LiveMetricsExporter(registry)
    version = np.array([1, 2, 2, 2])
    window = make_window(
        [200, 200, 503, 200],
        [10, 20, 30, 40],
        version=version,
        outputs={"label": np.array([1, 0, 1, 1])},
        labels=np.array([1.0, 0.0, 0.0, np.nan]),
    )
    exporter.update(snapshot(window))
    exporter.update_drift("fraud-api", 2, 0.25, True)
    text = generate_latest(registry).decode()
    assert 'modelyard_live_requests{deployment="fraud-api",version="2"} 3.0' in text
    assert 'modelyard_live_error_rate{deployment="fraud-api",version="2"} 0.333' in text
    assert (
        'modelyard_live_latency_seconds{deployment="fraud-api",quantile="1",version="2"} 0.04'
        in text
    )
    assert (
        'modelyard_live_quality{deployment="fraud-api",metric="accuracy",version="2"} 0.5' in text
    )
    assert 'modelyard_dataset_drift{deployment="fraud-api",version="2"} 1.0' in text
    exporter.update(snapshot(window.select(version == 1)))
    text = generate_latest(registry).decode()
    assert 'version="1"' in text
    assert 'modelyard_live_requests{deployment="fraud-api",version="2"}' not in text


pairs = st.integers(1, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 2), min_size=n, max_size=n),
        st.lists(st.integers(0, 2), min_size=n, max_size=n),
        st.lists(st.integers(0, 10).map(lambda k: k / 10), min_size=n, max_size=n),
    )
)


@settings(deadline=None, max_examples=30)
@given(data=pairs, classes=st.sampled_from([2, 3]))
def test_classification_metrics_match_sklearn_on_any_input(
    data: tuple[list[int], list[int], list[float]], classes: int
) -> None:
    truth, predicted, score = (np.array(column) for column in data)
    truth, predicted = truth % classes, predicted % classes
    outputs: dict[str, np.ndarray] = {"label": predicted}
    if classes == 2:
        outputs["score"] = score.astype(np.float64)
    n = len(truth)
    window = make_window([200] * n, [1.0] * n, outputs=outputs, labels=truth.astype(np.float64))
    found = quality_metrics(window)
    assert found is not None
    binary = len(set(truth) | set(predicted)) <= 2
    kwargs: dict[str, object] = {"zero_division": 0}
    if binary:
        kwargs["pos_label"] = (
            1 if set(truth) | set(predicted) <= {0, 1} else max(truth.max(), predicted.max())
        )
    else:
        kwargs["average"] = "macro"
    assert found.metrics["accuracy"] == pytest.approx(skm.accuracy_score(truth, predicted))
    assert found.metrics["precision"] == pytest.approx(
        skm.precision_score(truth, predicted, **kwargs)
    )
    assert found.metrics["recall"] == pytest.approx(skm.recall_score(truth, predicted, **kwargs))
    assert found.metrics["f1"] == pytest.approx(skm.f1_score(truth, predicted, **kwargs))
    if classes == 2 and binary:
        hits = truth == kwargs["pos_label"]
        assert found.metrics["log_loss"] == pytest.approx(
            skm.log_loss(hits, score, labels=[False, True]), rel=1e-6
        )
        if 0 < hits.sum() < n:
            assert found.metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(hits, score))
        else:
            assert "roc_auc" not in found.metrics
