"""A deployment's traffic over time, per version: request and error rates, p50 and p99.

Rates are exact and cheap: summed by the store from each stored batch's counts
(``InferenceLogRepository.traffic``), never from payloads, so an hour of a busy
deployment costs one indexed aggregate. Latency percentiles need each request's
latency, which only the payloads hold: each bucket reads the payloads of its newest
batches until they hold ``latency_sample`` requests, so a chart over millions of
logged requests decodes at most ``buckets x latency_sample`` of them. The percentiles
of a busy bucket are therefore those of its latest requests (a 200-request sample
puts p99 within a few of the largest values: a chart, not an SLO figure; the window
figures of ``window_figures`` are the exact ones).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from modelyard.monitoring.inference_log.payload import Payload
from modelyard.monitoring.inference_log.repository import InferenceLogRepository

LATENCY_SAMPLE = 200
MAX_BUCKETS = 240  # points per line a chart can show; a longer span gets wider buckets


@dataclass
class VersionSeries:
    """One version's figures, one entry per bucket of ``TrafficSeries.starts``."""

    requests_per_s: list[float] = field(default_factory=list)
    errors_per_s: list[float] = field(default_factory=list)
    p50_ms: list[float | None] = field(default_factory=list)
    p99_ms: list[float | None] = field(default_factory=list)


@dataclass
class TrafficSeries:
    """Bucket start times and each version's figures in them."""

    deployment: str
    bucket_s: float
    starts: list[float]
    versions: dict[int, VersionSeries]


def bucket_width(span_s: float, *, smallest_s: float = 10.0) -> float:
    """The bucket width for a chart over ``span_s``: a round number of seconds giving at
    most ``MAX_BUCKETS`` points."""
    for width in (smallest_s, 30.0, 60.0, 300.0, 900.0, 3600.0, 6 * 3600.0, 86400.0):
        if width >= smallest_s and span_s / width <= MAX_BUCKETS:
            return width
    return 86400.0 * math.ceil(span_s / 86400.0 / MAX_BUCKETS)


def traffic_series(
    log: InferenceLogRepository,
    deployment: str,
    start: float,
    end: float,
    *,
    bucket_s: float | None = None,
    latency_sample: int = LATENCY_SAMPLE,
) -> TrafficSeries:
    """``deployment``'s traffic in ``[start, end)`` per version and bucket (see the module
    docstring); buckets without requests are zeros, and their percentiles ``None``."""
    width = bucket_s or bucket_width(end - start)
    first = math.floor(start / width) * width
    starts = [first + i * width for i in range(math.ceil((end - first) / width))]
    index = {round(s / width): i for i, s in enumerate(starts)}
    series: dict[int, VersionSeries] = {}

    def of(version: int) -> VersionSeries:
        if version not in series:
            empty = [0.0] * len(starts)
            nothing: list[float | None] = [None] * len(starts)
            series[version] = VersionSeries(list(empty), list(empty), list(nothing), nothing[:])
        return series[version]

    busy: set[int] = set()
    for bucket in log.traffic(deployment, first, end, width):
        at = index.get(round(bucket.start / width))
        if at is None:
            continue
        figures = of(bucket.version)
        figures.requests_per_s[at] = bucket.requests / width
        figures.errors_per_s[at] = bucket.errors / width
        busy.add(at)
    for at in sorted(busy):
        latencies: dict[int, list[float]] = {}
        payloads = log.batch_payloads(
            deployment, starts[at], starts[at] + width, newest=latency_sample
        )
        for data in payloads:
            payload = Payload(data)
            for version, latency in zip(payload.versions, payload.latency_ms, strict=True):
                latencies.setdefault(version, []).append(latency)
        for version, values in latencies.items():
            p50, p99 = np.percentile(values, [50, 99])
            figures = of(version)
            figures.p50_ms[at] = round(float(p50), 3)
            figures.p99_ms[at] = round(float(p99), 3)
    return TrafficSeries(deployment, width, starts, dict(sorted(series.items())))
