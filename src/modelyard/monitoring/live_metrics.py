"""Live metrics of a window of traffic: volume, errors, latency, predictions and quality.

Pure functions of a ``Window``: no database, clock or network. ``snapshot``
groups a window by version (or arm) and measures each group and the whole;
``over_time`` does the same per time bucket, for plots and alert streaks.
A status >= 500 is a server error (``error_rate``); 4xx is the caller's mistake
and counted apart (``client_error_rate``), so a client sending bad payloads
does not page whoever runs the model. Latency percentiles cover every request.

Quality needs labels (feedback joined onto rows): classification gets accuracy,
precision, recall, F1, ROC AUC and log loss (the last two only with a binary
``score``), regression MAE and RMSE. They are computed here with numpy and
scipy (the tests hold them to ``sklearn.metrics``) because scikit-learn is an
optional extra, costs ~1.5 s to import, and its input checks cost ~40 ms per
group of metrics, which ``over_time`` pays once per bucket and version.

``served_sample`` is the same window as a canary judgement reads it: requests
that reached users (shadow copies left out), server errors, the latencies of the
answered ones and a sample of their predictions.

``LiveMetricsExporter`` publishes the latest snapshot of each deployment to a
Prometheus registry.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from scipy import stats

from modelyard.errors import ValidationError
from modelyard.monitoring.window import SHADOW_ARM, Window
from modelyard.registry.profile import output_columns

Task = Literal["classification", "regression"]
GroupBy = Literal["version", "arm"]
_TOP_CLASSES = 20


@dataclass(frozen=True)
class TrafficMetrics:
    """Volume, errors and latency of a group of requests; latencies are None without traffic."""

    requests: int
    rows: int
    requests_per_s: float
    errors: int
    client_errors: int
    error_rate: float
    client_error_rate: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    predictions: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class QualityMetrics:
    """Task metrics over the rows that have a label; ``coverage`` = labelled / rows."""

    task: Task
    rows: int
    labelled: int
    coverage: float
    metrics: dict[str, float]


@dataclass(frozen=True)
class GroupMetrics:
    traffic: TrafficMetrics
    quality: QualityMetrics | None


@dataclass(frozen=True)
class LiveMetrics:
    """Metrics of one window: the whole (``overall``) and per group (version or arm)."""

    deployment: str
    start: float
    end: float
    by: str
    overall: GroupMetrics
    groups: dict[str, GroupMetrics]

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (JSON-ready)."""
        return asdict(self)


def _percentile(values: npt.NDArray[np.float64], q: float) -> float | None:
    return float(np.percentile(values, q)) if values.size else None


def describe_predictions(column: npt.NDArray[Any]) -> dict[str, Any]:
    """Mean and quantiles of a numeric output, or class shares of a label/categorical one."""
    if column.dtype.kind == "f":
        finite = column[np.isfinite(column)]
        if not finite.size:
            return {"kind": "numeric", "count": 0}
        p05, p50, p95 = np.percentile(finite, [5, 50, 95])
        return {
            "kind": "numeric",
            "count": int(finite.size),
            "mean": float(finite.mean()),
            "std": float(finite.std()),
            "p05": float(p05),
            "p50": float(p50),
            "p95": float(p95),
        }
    keys = _class_keys(column)
    names, counts = np.unique(keys, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:_TOP_CLASSES]
    shares = {str(names[i]): float(counts[i] / keys.size) for i in order}
    return {"kind": "categorical", "count": int(keys.size), "shares": shares}


def _server_errors(status: npt.NDArray[Any]) -> int:
    return int(np.count_nonzero(status >= 500))


def _finite(latency_ms: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return latency_ms[np.isfinite(latency_ms)]


def _traffic(window: Window) -> TrafficMetrics:
    requests = window.requests
    errors = _server_errors(window.status)
    client = int(np.count_nonzero((window.status >= 400) & (window.status < 500)))
    span = window.end - window.start
    latency = _finite(window.latency_ms)
    return TrafficMetrics(
        requests=requests,
        rows=window.rows,
        requests_per_s=requests / span if span > 0 else 0.0,
        errors=errors,
        client_errors=client,
        error_rate=errors / requests if requests else 0.0,
        client_error_rate=client / requests if requests else 0.0,
        p50_ms=_percentile(latency, 50),
        p90_ms=_percentile(latency, 90),
        p99_ms=_percentile(latency, 99),
        max_ms=float(latency.max()) if latency.size else None,
        predictions={
            name: describe_predictions(np.asarray(values))
            for name, values in output_columns(window.outputs).items()
        },
    )


@dataclass(frozen=True)
class ServedSample:
    """A window's traffic as a canary judgement reads it (``served_sample``)."""

    requests: int
    server_errors: int
    latency_ms: npt.NDArray[np.float64] | None  # answered requests', None when there are none
    predictions: npt.NDArray[np.float64] | None


# The output columns a prediction sample is taken from, first found wins.
PREDICTION_COLUMNS = ("score", "prediction", "label")


def served_sample(window: Window) -> ServedSample:
    """The requests that reached users: how many, how many failed on the server's side
    (status >= 500; a client's 4xx is not the model's fault), the latencies of those
    answered (status < 400) and the ``score`` (a binary classifier's positive-class
    probability), ``prediction`` or numeric ``label`` of their rows. Shadow copies never
    count: they answered nobody."""
    if window.requests and (window.arm == SHADOW_ARM).any():
        window = window.select(window.arm != SHADOW_ARM)
    answered = window.status < 400
    latency = _finite(window.latency_ms[answered])
    latency = latency[latency >= 0]
    return ServedSample(
        requests=int(window.requests),
        server_errors=_server_errors(window.status),
        latency_ms=latency if latency.size else None,
        predictions=_prediction_sample(window, answered),
    )


def _prediction_sample(
    window: Window, answered: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float64] | None:
    if not window.rows or not window.outputs:
        return None
    columns = output_columns(window.outputs)
    rows = answered[window.row_request]
    for name in PREDICTION_COLUMNS:
        values = columns.get(name)
        if values is None or values.dtype.kind not in "fiub":
            continue
        sample = values[rows].astype(np.float64)
        sample = sample[np.isfinite(sample)]
        return sample if sample.size else None
    return None


def _groups(window: Window, by: GroupBy | None) -> dict[str, Window]:
    if by is None:
        return {"all": window}
    keys = window.version if by == "version" else window.arm
    return {str(key): window.select(keys == key) for key in sorted(set(keys.tolist()), key=str)}


def traffic_metrics(window: Window, by: GroupBy | None = "version") -> dict[str, TrafficMetrics]:
    """Traffic per version (or arm) of the window; ``by=None`` gives one group, ``"all"``."""
    return {key: _traffic(part) for key, part in _groups(window, by).items()}


# -- quality -----------------------------------------------------------------------------


def _class_key(value: Any) -> str:
    """One spelling per class, so that a label 1.0 from feedback matches a predicted 1."""
    if isinstance(value, bool | np.bool_):
        return str(int(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating) and math.isfinite(value) and value == int(value):
        return str(int(value))
    return str(value)


def _class_keys(values: npt.NDArray[Any]) -> npt.NDArray[np.str_]:
    return np.array([_class_key(v) for v in values.tolist()], dtype=str)


def _is_label(value: Any) -> bool:
    if value is None or isinstance(value, dict | list):
        return False
    return not (isinstance(value, float) and math.isnan(value))


def _class_order(keys: list[str]) -> list[str]:
    """Numeric classes in numeric order, like ``LabelEncoder``; else lexical."""
    try:
        return sorted(keys, key=float)
    except ValueError:
        return sorted(keys)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def _scores(
    true: npt.NDArray[np.str_], predicted: npt.NDArray[np.str_], label: str
) -> tuple[float, float, float]:
    """Precision, recall and F1 of one class (0 where undefined, like ``zero_division=0``)."""
    hit, said = true == label, predicted == label
    tp = float(np.count_nonzero(hit & said))
    fp, fn = float(np.count_nonzero(said)) - tp, float(np.count_nonzero(hit)) - tp
    return _ratio(tp, tp + fp), _ratio(tp, tp + fn), _ratio(2 * tp, 2 * tp + fp + fn)


def roc_auc(hits: npt.NDArray[np.bool_], score: npt.NDArray[np.float64]) -> float:
    """ROC AUC as the Mann-Whitney U statistic (ties count one half), like sklearn's."""
    positives = int(hits.sum())
    negatives = hits.size - positives
    ranks = stats.rankdata(score)
    u = float(ranks[hits].sum()) - positives * (positives + 1) / 2
    return u / (positives * negatives)


def _predicted(outputs: Mapping[str, npt.NDArray[Any]]) -> npt.NDArray[np.str_]:
    """A classifier's decision per row from its output columns: ``label``, else a binary
    ``score`` at 0.5, else ``prediction``."""
    score = outputs.get("score")
    if "label" in outputs:
        return _class_keys(outputs["label"])
    if score is not None:
        return np.where(score.astype(np.float64) >= 0.5, "1", "0")
    return _class_keys(outputs["prediction"])


def decisions(outputs: Mapping[str, Any]) -> npt.NDArray[np.str_] | None:
    """Each row's decision as a class key, from a model's outputs (as served or as the
    inference log holds them): the ``label``, else the argmax of multiclass
    ``probabilities``, else a binary ``score`` at 0.5; None for a regressor."""
    probabilities = outputs.get("probabilities")
    if "label" not in outputs and probabilities is not None:
        array = np.asarray(probabilities)
        if array.ndim == 2 and array.shape[1] > 2:
            return _class_keys(array.argmax(axis=1))
    columns = output_columns(dict(outputs))
    if infer_task(outputs) != "classification":
        return None
    return _predicted(columns)


def _labelled(labels: npt.NDArray[Any], task: Task) -> npt.NDArray[np.bool_]:
    """Which rows carry a usable label: any value for a classifier, a number for a
    regressor."""
    values = labels.tolist()
    usable = np.array([_is_label(v) for v in values], dtype=bool)
    if task == "regression":
        usable &= np.array([isinstance(v, int | float | np.number) for v in values], dtype=bool)
    return usable


def row_losses(window: Window) -> tuple[Task, npt.NDArray[np.float64]] | None:
    """One loss per labelled row, for comparing versions: 1.0 for a wrong class and 0.0
    for a right one (classifiers), the absolute error (regressors); None without labels
    or without a usable output."""
    if window.labels is None or not window.rows:
        return None
    task = infer_task(window.outputs)
    if task is None:
        return None
    outputs = output_columns(window.outputs)
    labelled = _labelled(window.labels, task)
    if not labelled.any():
        return None
    truth = window.labels[labelled]
    chosen = {name: np.asarray(values)[labelled] for name, values in outputs.items()}
    if task == "regression":
        error = chosen["prediction"].astype(np.float64) - truth.astype(np.float64)
        return task, np.abs(error)
    wrong = _predicted(chosen) != _class_keys(truth)
    return task, wrong.astype(np.float64)


def _classification(
    truth: npt.NDArray[Any], outputs: Mapping[str, npt.NDArray[Any]]
) -> dict[str, float]:
    score = outputs.get("score")
    predicted = _predicted(outputs)
    true = _class_keys(truth)
    classes = _class_order(sorted(set(true.tolist()) | set(predicted.tolist())))
    binary = len(classes) <= 2
    positive = "1" if set(classes) <= {"0", "1"} else classes[-1]
    # binary: the positive class's scores; multiclass: the unweighted mean over classes
    per_class = np.array([_scores(true, predicted, c) for c in ([positive] if binary else classes)])
    precision, recall, f1 = per_class.mean(axis=0)
    result = {
        "accuracy": float(np.mean(true == predicted)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
    }
    if binary and score is not None:
        hits = true == positive
        eps = np.finfo(np.float64).eps
        probability = np.clip(score.astype(np.float64), eps, 1 - eps)
        losses = np.where(hits, -np.log(probability), -np.log1p(-probability))
        result["log_loss"] = float(losses.mean())
        if 0 < hits.sum() < hits.size:
            result["roc_auc"] = roc_auc(hits, probability)
    return result


def _regression(truth: npt.NDArray[Any], predicted: npt.NDArray[Any]) -> dict[str, float]:
    error = predicted.astype(np.float64) - truth.astype(np.float64)
    return {"mae": float(np.abs(error).mean()), "rmse": float(np.sqrt(np.square(error).mean()))}


def infer_task(outputs: Mapping[str, Any]) -> Task | None:
    """Classification on a ``label`` or ``score`` output, regression on ``prediction``."""
    columns = output_columns(dict(outputs))
    if "label" in columns or "score" in columns:
        return "classification"
    if "prediction" in columns:
        return "regression"
    return None


def quality_metrics(window: Window, task: Task | None = None) -> QualityMetrics | None:
    """Metrics over the labelled rows; None without labels or without a usable output."""
    if window.labels is None:
        return None
    return score_outputs(window.outputs, window.labels, task)


def scored_columns(outputs: Mapping[str, Any], task: Task) -> dict[str, Any]:
    """The output columns, refusing outputs that hold none a ``task``'s metrics can use."""
    columns = output_columns(dict(outputs))
    needed = ("prediction",) if task == "regression" else ("label", "score", "prediction")
    if not any(name in columns for name in needed):
        raise ValidationError(
            f"{task} metrics need an output named {' or '.join(needed)}, "
            f"got {sorted(columns) or 'none'}"
        )
    return columns


def score_outputs(
    outputs: Mapping[str, Any], labels: npt.NDArray[Any], task: Task | None = None
) -> QualityMetrics | None:
    """Metrics of a model's outputs (as served) against ``labels``, one per row (None where
    a row has none); None without a usable output. A window's metrics, or a held-out
    set's."""
    task = task or infer_task(outputs)
    if task is None:
        return None
    columns = scored_columns(outputs, task)
    labelled = _labelled(labels, task)
    rows = len(labels)
    count = int(labelled.sum())
    coverage = count / rows if rows else 0.0
    if not count:
        return QualityMetrics(task, rows, 0, coverage, {})
    truth = labels[labelled]
    chosen = {name: np.asarray(values)[labelled] for name, values in columns.items()}
    if task == "regression":
        values = _regression(truth, chosen["prediction"])
    else:
        values = _classification(truth, chosen)
    return QualityMetrics(task, rows, count, coverage, values)


def snapshot(
    window: Window, by: GroupBy | None = "version", task: Task | None = None
) -> LiveMetrics:
    """Traffic and quality of the whole window and of each version (or arm)."""

    def measure(part: Window) -> GroupMetrics:
        return GroupMetrics(_traffic(part), quality_metrics(part, task))

    groups = {} if by is None else _groups(window, by)
    return LiveMetrics(
        deployment=window.deployment,
        start=window.start,
        end=window.end,
        by=by or "all",
        overall=measure(window),
        groups={key: measure(part) for key, part in groups.items()},
    )


def over_time(
    window: Window, bucket_s: float, by: GroupBy | None = None, task: Task | None = None
) -> list[LiveMetrics]:
    """One snapshot per ``bucket_s`` from ``window.start`` (empty buckets included)."""
    if not bucket_s > 0:
        raise ValidationError(f"bucket_s must be > 0, got {bucket_s!r}")
    count = max(1, math.ceil((window.end - window.start) / bucket_s))
    index = np.floor((window.ts - window.start) / bucket_s).astype(np.int64)
    result = []
    for number in range(count):
        part = window.select(index == number)
        start = window.start + number * bucket_s
        bucket = replace(part, start=start, end=min(start + bucket_s, window.end))
        result.append(snapshot(bucket, by, task))
    return result


# -- Prometheus --------------------------------------------------------------------------

_GAUGES: dict[str, tuple[str, str]] = {
    "requests": ("modelyard_live_requests", "Requests in the latest monitoring window"),
    "requests_per_s": ("modelyard_live_requests_per_second", "Request rate over the window"),
    "error_rate": ("modelyard_live_error_rate", "Share of requests with status >= 500"),
    "client_error_rate": ("modelyard_live_client_error_rate", "Share of 4xx requests"),
}
_QUANTILES = {"p50_ms": "0.5", "p90_ms": "0.9", "p99_ms": "0.99", "max_ms": "1"}


class LiveMetricsExporter(Collector):
    """The latest snapshot (and drift verdict) per deployment, as Prometheus gauges.

    A collector rather than ``Gauge`` objects: every scrape renders exactly the
    latest snapshots, so versions that left a deployment disappear instead of
    lingering with their last value, and updating is one dict assignment.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._snapshots: dict[str, LiveMetrics] = {}
        self._drift: dict[tuple[str, str], tuple[float, bool]] = {}
        if registry is not None:
            registry.register(self)

    def update(self, metrics: LiveMetrics) -> None:
        """Publish ``metrics`` as the deployment's current figures."""
        self._snapshots[metrics.deployment] = metrics

    def update_drift(self, deployment: str, version: int, share: float, drifted: bool) -> None:
        """Publish a drift verdict for one version of a deployment."""
        self._drift[(deployment, str(version))] = (share, drifted)

    def collect(self) -> Iterator[Metric]:
        labels = ["deployment", "version"]
        families = {
            key: GaugeMetricFamily(name, text, labels=labels)
            for key, (name, text) in _GAUGES.items()
        }
        latency = GaugeMetricFamily(
            "modelyard_live_latency_seconds",
            "Latency percentiles over the window",
            labels=[*labels, "quantile"],
        )
        quality = GaugeMetricFamily(
            "modelyard_live_quality",
            "Live task metric on labelled rows",
            labels=[*labels, "metric"],
        )
        coverage = GaugeMetricFamily(
            "modelyard_live_label_coverage", "Share of rows with a label", labels=labels
        )
        # dict.copy() is atomic under the GIL: a scrape never sees a half-made update
        for deployment, metrics in sorted(self._snapshots.copy().items()):
            groups = metrics.groups or {"all": metrics.overall}
            for version, group in sorted(groups.items()):
                key = [deployment, version]
                for name, family in families.items():
                    family.add_metric(key, float(getattr(group.traffic, name)))
                for name, quantile in _QUANTILES.items():
                    value = getattr(group.traffic, name)
                    if value is not None:
                        latency.add_metric([*key, quantile], value / 1000.0)
                if group.quality is not None:
                    coverage.add_metric(key, group.quality.coverage)
                    for metric, value in sorted(group.quality.metrics.items()):
                        quality.add_metric([*key, metric], value)
        share = GaugeMetricFamily(
            "modelyard_drift_share", "Share of features drifted, latest check", labels=labels
        )
        verdict = GaugeMetricFamily(
            "modelyard_dataset_drift", "1 when the latest check found drift", labels=labels
        )
        for (deployment, version), (value, drifted) in sorted(self._drift.copy().items()):
            share.add_metric([deployment, version], value)
            verdict.add_metric([deployment, version], float(drifted))
        yield from (*families.values(), latency, quality, coverage, share, verdict)
