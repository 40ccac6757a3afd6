"""Live metrics of a window too long to hold in memory, folded part by part.

``WindowFigures`` takes a window's parts (``storage.scan_window``, labels joined by
``feedback_join.joined_parts``) one at a time and keeps, per group (version or arm)
and for the whole, only counts, sums and sketches: its memory does not grow with the
window's length. ``metrics()`` answers the ``LiveMetrics`` that
``live_metrics.snapshot`` would over the whole window.

Exact (sums in float64, so means agree to ~1e-12 relative): requests, rows, the
request rate, server and client errors and their rates, the largest latency, the
mean, std and count of numeric outputs, the class shares of categorical ones,
labelled rows and coverage, accuracy, precision, recall, F1, log loss, MAE, RMSE.

Approximate, with a bound:

* latency percentiles and numeric output quantiles come from a DDSketch (Datadog's
  ``ddsketch``) with relative accuracy ``RELATIVE_ACCURACY`` (0.5%): each figure lies
  within 0.5% of the window's value at rank ``floor(q * (n - 1))``, where
  ``np.percentile`` interpolates between that value and the next;
* ROC AUC counts two scores whose logits lie in one bin of width ``AUC_BIN`` (0.002,
  odds within 0.2%) as a tie, so it differs from the exact figure by at most half
  the share of positive-negative pairs that close.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from ddsketch import DDSketch
from ddsketch.mapping import LogarithmicMapping

from modelyard.monitoring.live_metrics import (
    GroupBy,
    GroupMetrics,
    LiveMetrics,
    QualityMetrics,
    Task,
    TrafficMetrics,
    _class_keys,
    _class_order,
    _labelled,
    _predicted,
    _ratio,
    infer_task,
    scored_columns,
    snapshot,
)
from modelyard.monitoring.window import Window, empty_window
from modelyard.monitoring.window_sample import SAMPLE_ROWS, RowSample
from modelyard.registry.profile import output_columns

RELATIVE_ACCURACY = 0.005
AUC_BIN = 0.002
_AUC_LIMIT = 40.0  # logits past +-40 (probabilities within 4e-18 of 0 or 1) share a bin
_AUC_BINS = int(2 * _AUC_LIMIT / AUC_BIN) + 1
_TOP_CLASSES = 20


_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)  # DDSketch's own, for its bucket keys


def _sketch(values: npt.NDArray[np.float64], sketch: DDSketch | None) -> DDSketch:
    """``sketch`` (a new one if None) with ``values`` added.

    One ``DDSketch.add`` per value costs ~3 us; instead the values are bucketed with
    numpy by the sketch's own mapping (bucket ``k`` holds ``(gamma^(k-1), gamma^k]``)
    and each bucket is added once, weighted by its count, at the value the sketch
    represents it by (``mapping.value(k)``, inside the bucket, away from its edges).
    """
    sketch = sketch or DDSketch(RELATIVE_ACCURACY)
    tiny = _MAPPING.min_possible
    log_gamma = math.log(_MAPPING.gamma)
    for sign in (1.0, -1.0):
        magnitudes = values[values * sign > tiny] * sign
        if not magnitudes.size:
            continue
        keys, counts = np.unique(np.ceil(np.log(magnitudes) / log_gamma), return_counts=True)
        for key, count in zip(keys.tolist(), counts.tolist(), strict=True):
            sketch.add(sign * _MAPPING.value(int(key)), float(count))
    zeros = int(np.count_nonzero(np.abs(values) <= tiny))
    if zeros:
        sketch.add(0.0, float(zeros))
    return sketch


def _quantile(sketch: DDSketch | None, q: float) -> float | None:
    if sketch is None or not sketch.count:
        return None
    value = sketch.get_quantile_value(q)
    return None if value is None else float(value)


@dataclass
class _Numeric:
    """Count, mean and sum of squared deviations (merged as Chan et al.), and a sketch."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    sketch: DDSketch | None = None

    def add(self, values: npt.NDArray[np.float64]) -> None:
        finite = values[np.isfinite(values)]
        if not finite.size:
            return
        n, mean = finite.size, float(finite.mean())
        m2 = float(np.square(finite - mean).sum())
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total
        self.sketch = _sketch(finite, self.sketch)

    def describe(self) -> dict[str, Any]:
        if not self.count:
            return {"kind": "numeric", "count": 0}
        p05, p50, p95 = (_quantile(self.sketch, q) for q in (0.05, 0.5, 0.95))
        return {
            "kind": "numeric",
            "count": self.count,
            "mean": self.mean,
            "std": math.sqrt(self.m2 / self.count),
            "p05": p05,
            "p50": p50,
            "p95": p95,
        }


class _Predictions:
    """One output column described as ``describe_predictions`` would over the whole: its
    kind is the first part's (float: numeric; anything else: class shares)."""

    def __init__(self) -> None:
        self.numeric: _Numeric | None = None
        self.classes: Counter[str] | None = None

    def add(self, column: npt.NDArray[Any]) -> None:
        if self.numeric is None and self.classes is None:
            if column.dtype.kind == "f":
                self.numeric = _Numeric()
            else:
                self.classes = Counter()
        if self.numeric is not None:
            if column.dtype.kind in "fiub":
                self.numeric.add(column.astype(np.float64))
        elif self.classes is not None:
            if column.dtype.kind in "biu":  # a class label: count each value once
                names, counts = np.unique(column, return_counts=True)
                keys = _class_keys(names).tolist()
                self.classes.update(dict(zip(keys, counts.tolist(), strict=True)))
            else:
                self.classes.update(_class_keys(column).tolist())

    def describe(self) -> dict[str, Any]:
        if self.numeric is not None:
            return self.numeric.describe()
        classes = self.classes or Counter()
        total = sum(classes.values())
        top = sorted(classes.items(), key=lambda item: (-item[1], item[0]))[:_TOP_CLASSES]
        shares = {name: count / total for name, count in top}
        return {"kind": "categorical", "count": total, "shares": shares}


@dataclass
class _Traffic:
    requests: int = 0
    rows: int = 0
    errors: int = 0
    client_errors: int = 0
    latency: DDSketch | None = None
    max_ms: float | None = None
    predictions: dict[str, _Predictions] = field(default_factory=dict)

    def add(self, part: Window) -> None:
        self.requests += part.requests
        self.rows += part.rows
        self.errors += int(np.count_nonzero(part.status >= 500))
        self.client_errors += int(np.count_nonzero((part.status >= 400) & (part.status < 500)))
        latency = part.latency_ms[np.isfinite(part.latency_ms)]
        if latency.size:
            self.latency = _sketch(latency, self.latency)
            top = float(latency.max())
            self.max_ms = top if self.max_ms is None else max(self.max_ms, top)
        for name, values in output_columns(part.outputs).items():
            self.predictions.setdefault(name, _Predictions()).add(np.asarray(values))

    def metrics(self, span: float) -> TrafficMetrics:
        requests = self.requests
        return TrafficMetrics(
            requests=requests,
            rows=self.rows,
            requests_per_s=requests / span if span > 0 else 0.0,
            errors=self.errors,
            client_errors=self.client_errors,
            error_rate=self.errors / requests if requests else 0.0,
            client_error_rate=self.client_errors / requests if requests else 0.0,
            p50_ms=_quantile(self.latency, 0.5),
            p90_ms=_quantile(self.latency, 0.9),
            p99_ms=_quantile(self.latency, 0.99),
            max_ms=self.max_ms,
            predictions={name: p.describe() for name, p in self.predictions.items()},
        )


@dataclass
class _Quality:
    """What ``score_outputs`` needs, as counts and sums: a confusion count per (true,
    predicted) class, per true class the log-loss sums and a histogram of score logits."""

    task: Task | None = None
    rows: int = 0
    labelled: int = 0
    abs_error: float = 0.0
    squared_error: float = 0.0
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    scored: bool = True
    log_hit: dict[str, float] = field(default_factory=dict)  # -log p, by true class
    log_miss: dict[str, float] = field(default_factory=dict)  # -log(1 - p), by true class
    logits: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)

    def add(self, outputs: Mapping[str, Any], labels: npt.NDArray[Any]) -> None:
        self.task = self.task or infer_task(outputs)
        task = self.task
        self.rows += len(labels)
        if task is None:
            return
        columns = scored_columns(outputs, task)
        labelled = _labelled(labels, task)
        count = int(labelled.sum())
        if not count:
            return
        self.labelled += count
        truth = labels[labelled]
        chosen = {name: np.asarray(values)[labelled] for name, values in columns.items()}
        if task == "regression":
            error = chosen["prediction"].astype(np.float64) - truth.astype(np.float64)
            self.abs_error += float(np.abs(error).sum())
            self.squared_error += float(np.square(error).sum())
            return
        true, predicted = _class_keys(truth), _predicted(chosen)
        self.confusion.update(zip(true.tolist(), predicted.tolist(), strict=True))
        score = chosen.get("score")
        if score is None:
            self.scored = False
            return
        eps = np.finfo(np.float64).eps
        probability = np.clip(score.astype(np.float64), eps, 1 - eps)
        logit = np.clip(np.log(probability) - np.log1p(-probability), -_AUC_LIMIT, _AUC_LIMIT)
        bins = np.round((logit + _AUC_LIMIT) / AUC_BIN).astype(np.int64)
        for key in np.unique(true).tolist():
            mine = true == key
            self.log_hit[key] = self.log_hit.get(key, 0.0) - float(np.log(probability[mine]).sum())
            self.log_miss[key] = self.log_miss.get(key, 0.0) - float(
                np.log1p(-probability[mine]).sum()
            )
            counts = np.bincount(bins[mine], minlength=_AUC_BINS)
            known = self.logits.get(key)
            self.logits[key] = counts if known is None else known + counts

    def metrics(self) -> QualityMetrics | None:
        task = self.task
        if task is None:
            return None
        coverage = self.labelled / self.rows if self.rows else 0.0
        count = self.labelled
        if not count:
            return QualityMetrics(task, self.rows, 0, coverage, {})
        if task == "regression":
            values = {"mae": self.abs_error / count, "rmse": math.sqrt(self.squared_error / count)}
        else:
            values = self._classification(count)
        return QualityMetrics(task, self.rows, count, coverage, values)

    def _classification(self, count: int) -> dict[str, float]:
        confusion = self.confusion
        keys = {t for t, _ in confusion} | {p for _, p in confusion}
        classes = _class_order(sorted(keys))
        binary = len(classes) <= 2
        positive = "1" if set(classes) <= {"0", "1"} else classes[-1]
        scores = []
        for label in [positive] if binary else classes:
            tp = float(confusion[(label, label)])
            said = float(sum(n for (_, p), n in confusion.items() if p == label))
            hit = float(sum(n for (t, _), n in confusion.items() if t == label))
            fp, fn = said - tp, hit - tp
            scores.append(
                (_ratio(tp, tp + fp), _ratio(tp, tp + fn), _ratio(2 * tp, 2 * tp + fp + fn))
            )
        precision, recall, f1 = np.array(scores).mean(axis=0)
        right = sum(n for (t, p), n in confusion.items() if t == p)
        result = {
            "accuracy": right / count,
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
        }
        if binary and self.scored and self.logits:
            losses = sum(
                self.log_hit[key] if key == positive else self.log_miss[key] for key in self.logits
            )
            result["log_loss"] = losses / count
            empty = np.zeros(_AUC_BINS, dtype=np.int64)
            hits = self.logits.get(positive, empty)
            misses = sum((v for k, v in self.logits.items() if k != positive), empty)
            positives, negatives = int(hits.sum()), int(misses.sum())
            if positives and negatives:
                below = np.cumsum(misses) - misses
                pairs = float((hits * below).sum()) + 0.5 * float((hits * misses).sum())
                result["roc_auc"] = pairs / (positives * negatives)
        return result


class _Group:
    def __init__(self) -> None:
        self.traffic = _Traffic()
        self.quality = _Quality()
        self.has_labels = False

    def add(self, part: Window, task: Task | None) -> None:
        self.traffic.add(part)
        if part.labels is not None:
            self.has_labels = True
            if task is not None and self.quality.task is None:
                self.quality.task = task
            self.quality.add(part.outputs, part.labels)

    def metrics(self, span: float) -> GroupMetrics:
        quality = self.quality.metrics() if self.has_labels else None
        return GroupMetrics(self.traffic.metrics(span), quality)


class WindowFigures:
    """``snapshot``'s figures of one window, folded from its parts (see the module's
    docstring for which are exact and the bounds of the others)."""

    def __init__(
        self,
        deployment: str,
        start: float,
        end: float,
        by: GroupBy | None = "version",
        task: Task | None = None,
    ) -> None:
        self.deployment, self.start, self.end = deployment, start, end
        self.by, self.task = by, task
        self._overall = _Group()
        self._groups: dict[str, _Group] = {}

    def add(self, part: Window) -> None:
        """Fold in one part of the window (requests not seen in any other part)."""
        if not part.requests:
            return
        self._overall.add(part, self.task)
        if self.by is None:
            return
        keys = part.version if self.by == "version" else part.arm
        for key in set(keys.tolist()):
            group = self._groups.setdefault(str(key), _Group())
            group.add(part.select(keys == key), self.task)

    def metrics(self) -> LiveMetrics:
        span = self.end - self.start
        return LiveMetrics(
            deployment=self.deployment,
            start=self.start,
            end=self.end,
            by=self.by or "all",
            overall=self._overall.metrics(span),
            groups={key: self._groups[key].metrics(span) for key in sorted(self._groups)},
        )


@dataclass(frozen=True)
class MeasuredWindow:
    """A window's live metrics and the rows its row-level figures (drift) are read from:
    the whole window when it came in one part, else a ``RowSample`` of it."""

    metrics: LiveMetrics
    sample: Window


def measure(
    parts: Iterable[Window],
    deployment: str,
    start: float,
    end: float,
    *,
    by: GroupBy | None = "version",
    task: Task | None = None,
    sample_rows: int = SAMPLE_ROWS,
    rng: np.random.Generator | int = 0,
) -> MeasuredWindow:
    """Measure a window from its parts, holding at most two parts and the sample at once.

    A window that comes in one part is measured exactly as ``snapshot`` measures it
    and is its own sample; a longer one is folded by ``WindowFigures`` (bounds in the
    module's docstring) and sampled by ``RowSample`` (``sample_rows`` per version; 0:
    no sample, for a caller that needs only the metrics).
    """
    found = iter(parts)
    first = next(found, None)
    if first is None:
        empty = empty_window(deployment, start, end)
        return MeasuredWindow(snapshot(empty, by, task), empty)
    second = next(found, None)
    if second is None:
        return MeasuredWindow(snapshot(first, by, task), first)
    figures = WindowFigures(deployment, first.start, first.end, by, task)
    sample = RowSample(sample_rows, rng) if sample_rows else None
    for part in itertools.chain([first, second], found):
        figures.add(part)
        if sample is not None:
            sample.add(part)
    if sample is None:
        return MeasuredWindow(figures.metrics(), empty_window(deployment, first.start, first.end))
    return MeasuredWindow(figures.metrics(), sample.window(deployment, first.start, first.end))
