"""Prometheus metrics for the server: recorded per worker, merged at scrape time.

Why not ``prometheus_client``'s own counters: every observation there takes a
lock, and its multi-process mode needs ``PROMETHEUS_MULTIPROC_DIR`` set in the
environment before import and writes an mmap per sample. Here each worker
records into plain dicts owned by its event-loop thread (a dict lookup and a
``bisect`` per request) and publishes a snapshot file about once a second and
on every scrape; the worker that answers ``/metrics`` merges every worker's
latest snapshot. ``prometheus_client`` still writes the exposition text.

Counters stay monotonic: a worker writes its snapshot before it reports it, so
a later scrape served by another worker reads at least the same values. A
dead worker's counters keep counting in the totals; its gauges are dropped once
its snapshot is older than ``STALE_AFTER_S``.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
STALE_AFTER_S = 5.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# The server's monitoring pass writes its figures to this file of the metrics directory;
# every worker appends it to its /metrics.
MONITORING_TEXT = "monitoring.prom"

# Gauges: name -> (help, labels, how workers combine).
GAUGES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "modelyard_queue_rows": ("Rows waiting to be batched", ("model", "version"), "sum"),
    "modelyard_inflight_requests": ("Requests being handled", (), "sum"),
    "modelyard_event_loop_lag_seconds": ("Event-loop lag, worst worker", (), "max"),
    "modelyard_model_version": ("Version each served reference points at", ("ref", "model"), "max"),
    "modelyard_ready": ("Workers ready to serve", (), "sum"),
    "modelyard_workers": ("Workers reporting", (), "sum"),
    "modelyard_inference_log_backlog_bytes": (
        "Write-ahead log bytes not yet in the store",
        (),
        "sum",
    ),
}
GaugeSample = tuple[tuple[str, ...], float]
# What a snapshot holds besides gauges: histograms and counters, each summed over workers.
_HISTOGRAMS = ("requests", "batches", "shadow_latency")
_COUNTERS = ("errors", "loads", "shadow_requests", "shadow_rows", "log_records", "feedback_labels")


class Histogram:
    """Counts per bucket (non-cumulative, last one is +Inf) and the sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value


class ServingMetrics:
    """One worker's metrics, written from its event-loop thread only."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], Histogram] = {}
        self.errors: dict[tuple[str, str, str], int] = {}
        self.batches: dict[tuple[str, str], Histogram] = {}
        self.loads: dict[tuple[str, str, str], int] = {}
        # Shadow traffic (see ``shadow``): requests by outcome, rows compared and agreed,
        # and the latency of the shadow and of the primary it mirrored, by role.
        self.shadow_requests: dict[tuple[str, str, str], int] = {}
        self.shadow_rows: dict[tuple[str, str, str], int] = {}
        self.shadow_latency: dict[tuple[str, str, str], Histogram] = {}
        # The inference log's counts by (deployment, outcome): logged, dropped_by_sampling,
        # dropped_when_full; the logger keeps them, ``ServingApp`` copies them in here.
        self.log_records: dict[tuple[str, str], int] = {}
        # Feedback labels by outcome (``monitoring.feedback_outcomes.OUTCOMES``); the
        # receiver keeps them, ``ServingApp`` copies them in here.
        self.feedback_labels: dict[tuple[str], int] = {}

    def request(
        self, model: str, version: str, status: int, seconds: float, code: str | None
    ) -> None:
        key = (model, version, str(status))
        histogram = self.requests.get(key)
        if histogram is None:
            histogram = self.requests[key] = Histogram(LATENCY_BUCKETS)
        histogram.observe(seconds)
        if code is not None:
            error_key = (model, version, code)
            self.errors[error_key] = self.errors.get(error_key, 0) + 1

    def batch(self, model: str, version: str, rows: int) -> None:
        key = (model, version)
        histogram = self.batches.get(key)
        if histogram is None:
            histogram = self.batches[key] = Histogram(BATCH_BUCKETS)
        histogram.observe(rows)

    def model_load(self, model: str, version: str, outcome: str) -> None:
        key = (model, version, outcome)
        self.loads[key] = self.loads.get(key, 0) + 1

    def shadow(self, deployment: str, version: str, outcome: str) -> None:
        """One mirrored request's fate: answered, failed, dropped, expired, hook_failed."""
        key = (deployment, version, outcome)
        self.shadow_requests[key] = self.shadow_requests.get(key, 0) + 1

    def shadow_agreement(self, deployment: str, version: str, rows: int, agreed: int) -> None:
        for result, count in (("compared", rows), ("agreed", agreed)):
            key = (deployment, version, result)
            self.shadow_rows[key] = self.shadow_rows.get(key, 0) + count

    def shadow_duration(self, deployment: str, version: str, role: str, seconds: float) -> None:
        key = (deployment, version, role)
        histogram = self.shadow_latency.get(key)
        if histogram is None:
            histogram = self.shadow_latency[key] = Histogram(LATENCY_BUCKETS)
        histogram.observe(seconds)

    def snapshot(self, gauges: dict[str, list[GaugeSample]], now: float) -> dict[str, Any]:
        """A JSON-able copy of everything, with the gauges sampled by the caller."""
        return {
            "pid": os.getpid(),
            "at": now,
            "requests": [[*k, h.counts, h.total] for k, h in self.requests.items()],
            "errors": [[*k, n] for k, n in self.errors.items()],
            "batches": [[*k, h.counts, h.total] for k, h in self.batches.items()],
            "loads": [[*k, n] for k, n in self.loads.items()],
            "shadow_requests": [[*k, n] for k, n in self.shadow_requests.items()],
            "shadow_rows": [[*k, n] for k, n in self.shadow_rows.items()],
            "shadow_latency": [[*k, h.counts, h.total] for k, h in self.shadow_latency.items()],
            "log_records": [[*k, n] for k, n in self.log_records.items()],
            "feedback_labels": [[*k, n] for k, n in self.feedback_labels.items()],
            "gauges": {
                name: [[list(labels), value] for labels, value in samples]
                for name, samples in gauges.items()
            },
        }


def merge(snapshots: Iterable[dict[str, Any]], now: float) -> dict[str, Any]:
    """Sum counters and histograms of all snapshots; combine gauges of fresh ones."""
    histograms: dict[str, dict[tuple[str, ...], list[Any]]] = {n: {} for n in _HISTOGRAMS}
    counters: dict[str, dict[tuple[str, ...], int]] = {n: {} for n in _COUNTERS}
    gauges: dict[str, dict[tuple[str, ...], float]] = {name: {} for name in GAUGES}
    for snap in snapshots:
        for name, target in histograms.items():
            for *labels, counts, total in snap.get(name, ()):
                key = tuple(labels)
                if key in target:
                    merged = target[key]
                    merged[0] = [a + b for a, b in zip(merged[0], counts, strict=True)]
                    merged[1] += total
                else:
                    target[key] = [list(counts), total]
        for name, target_counts in counters.items():
            for *labels, count in snap.get(name, ()):
                key = tuple(labels)
                target_counts[key] = target_counts.get(key, 0) + count
        if now - snap["at"] > STALE_AFTER_S:
            continue
        for name, samples in snap["gauges"].items():
            if name not in GAUGES:
                continue
            how = GAUGES[name][2]
            for labels, value in samples:
                key = tuple(labels)
                old = gauges[name].get(key)
                if old is None:
                    gauges[name][key] = value
                else:
                    gauges[name][key] = old + value if how == "sum" else max(old, value)
    return {**histograms, **counters, "gauges": gauges}


class _Collector(Collector):
    def __init__(self, merged: dict[str, Any]) -> None:
        self._merged = merged

    def collect(self) -> Iterator[Metric]:
        merged = self._merged
        total = CounterMetricFamily(
            "modelyard_requests", "Requests answered", labels=["model", "version", "status"]
        )
        latency = HistogramMetricFamily(
            "modelyard_request_duration_seconds",
            "Time from request start to response, by model, version and status",
            labels=["model", "version", "status"],
        )
        for labels, (counts, seconds) in sorted(merged["requests"].items()):
            total.add_metric(list(labels), sum(counts))
            latency.add_metric(list(labels), _cumulative(LATENCY_BUCKETS, counts), seconds)
        yield total
        yield latency
        errors = CounterMetricFamily(
            "modelyard_request_errors",
            "Error responses by code",
            labels=["model", "version", "code"],
        )
        for labels, count in sorted(merged["errors"].items()):
            errors.add_metric(list(labels), count)
        yield errors
        batch = HistogramMetricFamily(
            "modelyard_batch_rows", "Rows per model call", labels=["model", "version"]
        )
        for labels, (counts, rows) in sorted(merged["batches"].items()):
            batch.add_metric(list(labels), _cumulative(BATCH_BUCKETS, counts), rows)
        yield batch
        loads = CounterMetricFamily(
            "modelyard_model_loads",
            "Model load events (outcome: loaded, failed, swapped_in, unloaded)",
            labels=["model", "version", "outcome"],
        )
        for labels, count in sorted(merged["loads"].items()):
            loads.add_metric(list(labels), count)
        yield loads
        logged = CounterMetricFamily(
            "modelyard_inference_log_records",
            "Predictions by what the inference log did with them "
            "(logged, dropped_by_sampling, dropped_when_full)",
            labels=["deployment", "outcome"],
        )
        for labels, count in sorted(merged["log_records"].items()):
            logged.add_metric(list(labels), count)
        yield logged
        labels = CounterMetricFamily(
            "modelyard_feedback_labels",
            "Feedback labels by outcome: joined, pending, refused or deferred when posted; "
            "then each pending one joined_late or expired once its wait ended",
            labels=["outcome"],
        )
        for key, count in sorted(merged["feedback_labels"].items()):
            labels.add_metric(list(key), count)
        yield labels
        yield from _shadow_families(merged)
        for name, (doc, label_names, _) in GAUGES.items():
            gauge = GaugeMetricFamily(name, doc, labels=list(label_names))
            for labels, value in sorted(merged["gauges"][name].items()):
                gauge.add_metric(list(labels), value)
            yield gauge


def _shadow_families(merged: dict[str, Any]) -> Iterator[Metric]:
    """Shadow traffic: agreement rate is ``agreed / compared`` of ``modelyard_shadow_rows``."""
    requests = CounterMetricFamily(
        "modelyard_shadow_requests",
        "Requests mirrored to shadow versions, by outcome "
        "(answered, failed, dropped, expired, hook_failed)",
        labels=["deployment", "version", "outcome"],
    )
    for labels, count in sorted(merged["shadow_requests"].items()):
        requests.add_metric(list(labels), count)
    yield requests
    rows = CounterMetricFamily(
        "modelyard_shadow_rows",
        "Rows a shadow answered that were compared with the primary, and those that agreed "
        "(same label, or every score within 1e-6)",
        labels=["deployment", "version", "result"],
    )
    for labels, count in sorted(merged["shadow_rows"].items()):
        rows.add_metric(list(labels), count)
    yield rows
    latency = HistogramMetricFamily(
        "modelyard_shadow_duration_seconds",
        "Latency of mirrored requests: the shadow's (role=shadow) and the primary's it "
        "mirrored (role=primary)",
        labels=["deployment", "version", "role"],
    )
    for labels, (counts, seconds) in sorted(merged["shadow_latency"].items()):
        latency.add_metric(list(labels), _cumulative(LATENCY_BUCKETS, counts), seconds)
    yield latency


def _cumulative(bounds: tuple[float, ...], counts: list[int]) -> list[tuple[str, float]]:
    running = 0
    buckets = []
    for bound, count in zip((*bounds, float("inf")), counts, strict=True):
        running += count
        buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), float(running)))
    return buckets


def render(merged: dict[str, Any]) -> bytes:
    """The Prometheus text exposition of merged metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(merged))
    return bytes(generate_latest(registry))


class MetricsExchange:
    """Snapshot files shared by the workers of one server, one file per worker."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._own = directory / f"worker-{os.getpid()}.json" if directory else None

    def publish(self, snapshot: dict[str, Any]) -> None:
        if self._own is None:
            return
        temporary = self._own.with_suffix(".tmp")
        temporary.write_bytes(orjson.dumps(snapshot))
        os.replace(temporary, self._own)

    def gather(self, own: dict[str, Any]) -> list[dict[str, Any]]:
        """This worker's snapshot plus every other worker's latest file."""
        snapshots = [own]
        if self.directory is None:
            return snapshots
        for path in sorted(self.directory.glob("worker-*.json")):
            if path == self._own:
                continue
            try:
                snapshots.append(orjson.loads(path.read_bytes()))
            except (OSError, orjson.JSONDecodeError):
                continue  # being replaced right now, or a torn file from a crash
        return snapshots
