"""A window folded part by part gives the figures ``snapshot`` gives over the whole:
counts exactly, percentiles within the sketch's bound, and a bounded uniform row sample."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from modelyard.monitoring.live_metrics import GroupMetrics, LiveMetrics, snapshot
from modelyard.monitoring.window import Window
from modelyard.monitoring.window_figures import (
    AUC_BIN,
    RELATIVE_ACCURACY,
    WindowFigures,
    measure,
)
from modelyard.monitoring.window_sample import RowSample


def traffic(
    rng: np.random.Generator,
    n: int,
    *,
    task: str = "binary",
    start: float = 0.0,
    end: float = 3600.0,
) -> Window:
    """``n`` requests of two versions, 1-3 rows each, some failed, most rows labelled."""
    per = rng.integers(1, 4, n)
    rows = int(per.sum())
    version = rng.choice([1, 2], n, p=[0.8, 0.2])
    if task == "binary":
        score = rng.uniform(size=rows)
        outputs = {"label": (score >= 0.5).astype(np.int64), "score": score}
        truth = (rng.uniform(size=rows) < score).astype(np.float64)
    elif task == "multiclass":
        label = rng.choice(["a", "b", "c"], rows)
        outputs = {"label": label.astype(object)}
        truth = np.where(rng.uniform(size=rows) < 0.7, label, rng.choice(["a", "b", "c"], rows))
    else:
        prediction = rng.normal(10.0, 3.0, rows)
        outputs = {"prediction": prediction}
        truth = prediction + rng.normal(0.0, 1.0, rows)
    labels = np.array(truth, dtype=object)
    labels[rng.uniform(size=rows) < 0.3] = None
    return Window(
        deployment="fraud-api",
        start=start,
        end=end,
        request_ids=np.array([f"r{i}" for i in range(n)], dtype=object),
        ts=np.sort(rng.uniform(start, end, n)),
        version=version.astype(np.int64),
        arm=np.where(version == 2, "canary", "champion").astype(object),
        status=rng.choice([200, 200, 200, 200, 422, 500], n).astype(np.int64),
        latency_ms=rng.lognormal(2.0, 1.0, n),
        row_request=np.repeat(np.arange(n), per),
        inputs={"amount": rng.gamma(2.0, 50.0, rows), "country": rng.choice(["FR", "DE"], rows)},
        outputs=outputs,
        labels=labels,
    )


def split(window: Window, parts: int) -> list[Window]:
    """The window as ``parts`` consecutive runs of requests."""
    edges = np.linspace(0, window.requests, parts + 1).astype(int)
    index = np.arange(window.requests)
    runs = zip(edges[:-1], edges[1:], strict=True)
    return [window.select((index >= a) & (index < b)) for a, b in runs]


def within_sketch(got: float | None, values: np.ndarray, q: float) -> bool:
    """Within the relative accuracy of the order statistics ``np.percentile`` interpolates."""
    ordered = np.sort(values[np.isfinite(values)])
    low = ordered[math.floor(q * (len(ordered) - 1))]
    high = ordered[math.ceil(q * (len(ordered) - 1))]
    assert got is not None
    slack = RELATIVE_ACCURACY * max(abs(low), abs(high)) + 1e-12
    return bool(low - slack <= got <= high + slack)


def assert_same(
    folded: GroupMetrics, whole: GroupMetrics, latency: np.ndarray, *, auc_tolerance: float
) -> None:
    a, b = folded.traffic, whole.traffic
    for name in ("requests", "rows", "errors", "client_errors"):
        assert getattr(a, name) == getattr(b, name), name
    for name in ("requests_per_s", "error_rate", "client_error_rate"):
        assert getattr(a, name) == pytest.approx(getattr(b, name), rel=1e-12), name
    assert a.max_ms == b.max_ms
    for name, q in (("p50_ms", 0.5), ("p90_ms", 0.9), ("p99_ms", 0.99)):
        assert within_sketch(getattr(a, name), latency, q), name
    assert a.predictions.keys() == b.predictions.keys()
    for name, described in b.predictions.items():
        mine = a.predictions[name]
        assert mine["kind"] == described["kind"]
        assert mine["count"] == described["count"]
        if described["kind"] == "categorical":
            assert mine["shares"] == pytest.approx(described["shares"], rel=1e-12)
        else:
            assert mine["mean"] == pytest.approx(described["mean"], rel=1e-9)
            assert mine["std"] == pytest.approx(described["std"], rel=1e-9)
    if whole.quality is None:
        assert folded.quality is None
        return
    assert folded.quality is not None
    assert folded.quality.task == whole.quality.task
    assert folded.quality.labelled == whole.quality.labelled
    assert folded.quality.coverage == pytest.approx(whole.quality.coverage, rel=1e-12)
    assert folded.quality.metrics.keys() == whole.quality.metrics.keys()
    for name, value in whole.quality.metrics.items():
        got = folded.quality.metrics[name]
        if name == "roc_auc":
            assert got == pytest.approx(value, abs=auc_tolerance)
        else:
            assert got == pytest.approx(value, rel=1e-9), name


def fold(window: Window, parts: int, by: str | None = "version") -> LiveMetrics:
    figures = WindowFigures(window.deployment, window.start, window.end, by=by)  # type: ignore[arg-type]
    for part in split(window, parts):
        figures.add(part)
    return figures.metrics()


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("parts", [1, 7])
def test_parts_fold_to_the_figures_of_the_whole(task: str, parts: int) -> None:
    window = traffic(np.random.default_rng(3), 4_000, task=task)
    whole = snapshot(window, by="version")
    folded = fold(window, parts)
    assert folded.groups.keys() == whole.groups.keys() == {"1", "2"}
    # scores are uniform: pairs with logits within AUC_BIN are about that share of all
    tolerance = 2 * AUC_BIN
    assert_same(folded.overall, whole.overall, window.latency_ms, auc_tolerance=tolerance)
    for key, group in whole.groups.items():
        latency = window.latency_ms[window.version == int(key)]
        assert_same(folded.groups[key], group, latency, auc_tolerance=tolerance)


def test_groups_by_arm_and_a_window_without_labels() -> None:
    window = traffic(np.random.default_rng(4), 1_000)
    window = Window(**{**window.__dict__, "labels": None})
    folded, whole = fold(window, 5, by="arm"), snapshot(window, by="arm")
    assert folded.groups.keys() == {"canary", "champion"}
    for key, group in whole.groups.items():
        latency = window.latency_ms[window.arm == key]
        assert_same(folded.groups[key], group, latency, auc_tolerance=0.0)
        assert folded.groups[key].quality is None


def test_latency_percentiles_hold_their_bound_on_a_long_tail() -> None:
    rng = np.random.default_rng(5)
    window = traffic(rng, 60_000)
    window = Window(**{**window.__dict__, "latency_ms": rng.pareto(1.5, 60_000) * 10 + 0.1})
    folded = fold(window, 30, by=None)
    traffic_figures = folded.overall.traffic
    for name, q in (("p50_ms", 0.5), ("p90_ms", 0.9), ("p99_ms", 0.99)):
        assert within_sketch(getattr(traffic_figures, name), window.latency_ms, q), name


def test_one_part_is_measured_exactly_and_is_its_own_sample() -> None:
    window = traffic(np.random.default_rng(6), 500)
    measured = measure([window], window.deployment, window.start, window.end)
    assert measured.metrics == snapshot(window, by="version")
    assert measured.sample is window
    empty = measure([], "fraud-api", 0.0, 10.0)
    assert empty.metrics.overall.traffic.requests == 0
    assert empty.sample.rows == 0


def test_a_short_window_in_parts_keeps_every_row_in_time_order() -> None:
    window = traffic(np.random.default_rng(7), 300)
    parts = split(window, 4)
    shuffled = [parts[2], parts[0], parts[3], parts[1]]  # two workers' batches interleave
    measured = measure(shuffled, window.deployment, window.start, window.end)
    sample = measured.sample
    assert sample.rows == window.rows
    order = np.argsort(window.ts[window.row_request], kind="stable")
    for name, column in window.inputs.items():
        assert sample.inputs[name].tolist() == column[order].tolist()
    assert sample.version.tolist() == window.version[window.row_request][order].tolist()
    assert measured.metrics.overall.traffic.requests == window.requests
    figures_only = measure(shuffled, window.deployment, window.start, window.end, sample_rows=0)
    assert figures_only.metrics == measured.metrics
    assert figures_only.sample.rows == 0


def test_the_sample_is_bounded_per_version_and_uniform_over_the_whole_window() -> None:
    rng = np.random.default_rng(8)
    sample = RowSample(size=2_000, rng=9)
    parts = 20
    for number in range(parts):  # 10,000 rows per part; the feature says which part
        n = 10_000
        sample.add(
            Window(
                deployment="fraud-api",
                start=0.0,
                end=float(parts),
                request_ids=np.array([f"{number}-{i}" for i in range(n)], dtype=object),
                ts=np.full(n, float(number)),
                version=rng.choice([1, 2], n).astype(np.int64),
                arm=np.full(n, "champion", dtype=object),
                status=np.full(n, 200, dtype=np.int64),
                latency_ms=np.ones(n),
                row_request=np.arange(n),
                inputs={"part": np.full(n, float(number))},
            )
        )
    drawn = sample.window("fraud-api", 0.0, float(parts))
    assert drawn.rows == 4_000
    for version in (1, 2):
        mine = drawn.inputs["part"][drawn.version == version]
        assert mine.size == 2_000
        counts = np.bincount(mine.astype(int), minlength=parts)
        # as many from the first parts as from the last: not the newest rows
        assert stats.chisquare(counts).pvalue > 0.001
    assert (np.diff(drawn.ts) >= 0).all()


def test_a_sample_needs_room_for_a_row() -> None:
    with pytest.raises(ValueError, match="at least 1 row"):
        RowSample(size=0)


def test_output_quantiles_hold_their_bound_with_negative_and_zero_values() -> None:
    rng = np.random.default_rng(10)
    window = traffic(rng, 20_000, task="regression")
    prediction = rng.normal(0.0, 5.0, window.rows)
    prediction[::50] = 0.0
    window = Window(**{**window.__dict__, "outputs": {"prediction": prediction}})
    described = fold(window, 9, by=None).overall.traffic.predictions["prediction"]
    for name, q in (("p05", 0.05), ("p50", 0.5), ("p95", 0.95)):
        assert within_sketch(described[name], prediction, q), name
