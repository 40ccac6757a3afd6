"""Measuring a candidate against the champion on held-out rows: the gate's evidence.

Both models predict the same held-out rows through their registered format (the
candidate as ``Registry.prepare`` made it, so the gate judges the bytes that will be
stored), their outputs are scored by ``monitoring.live_metrics.score_outputs`` (the
same metrics the live monitor computes from feedback), non-finite outputs are
counted, the candidate's gain is bounded by a paired bootstrap over the rows (a
candidate that only matches the champion does not pass on a lucky split), and its
latency is timed one row at a time on a sample.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from modelyard.errors import ModelyardError
from modelyard.monitoring.live_metrics import score_outputs
from modelyard.pipelines.gate import NO_METRIC, GateEvidence, GatePolicy
from modelyard.registry import Predictor, Signature
from modelyard.registry.signature import example_columns
from modelyard.routing.deployment import describe_input_difference

__all__ = ["gain_lower_bound", "measure", "signature_problem"]

# Enough for a stable 5% quantile; ~0.1-0.3 s on a few thousand held-out rows.
BOOTSTRAP_RESAMPLES = 200


def measure(
    policy: GatePolicy,
    candidate: Predictor,
    champion: Predictor | None,
    holdout: Any,
    labels: Any,
    *,
    feature_names: list[str] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> GateEvidence:
    """The evidence for ``gate.judge``: metrics of both, sanity of the candidate."""
    columns = example_columns(holdout, feature_names)
    truth = np.asarray(labels, dtype=object)
    outputs = candidate.predict(columns)
    champion_metrics = None
    problem = None
    bound = None
    if champion is not None:
        problem = signature_problem(champion.signature, candidate.signature)
        if problem is None:
            try:
                theirs = champion.predict(columns)
            except ModelyardError as error:
                problem = f"the champion cannot predict the held-out rows: {error.message}"
            else:
                champion_metrics = _metrics(theirs, truth)
                if policy.confidence is not None and policy.metric != NO_METRIC:
                    bound = gain_lower_bound(policy, outputs, theirs, truth)
    return GateEvidence(
        candidate=_metrics(outputs, truth),
        champion=champion_metrics,
        holdout_rows=len(truth),
        non_finite_outputs=_non_finite(outputs),
        latency_p99_ms=_latency_p99_ms(candidate, columns, policy.latency_sample, clock),
        signature_problem=problem,
        gain_lower_bound=bound,
    )


def gain_lower_bound(
    policy: GatePolicy,
    candidate: Mapping[str, np.ndarray],
    champion: Mapping[str, np.ndarray],
    truth: np.ndarray,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> float | None:
    """The ``1 - confidence`` quantile of the candidate's gain on ``policy.metric`` over
    paired bootstrap resamples of the held-out rows (both models scored on the same
    rows each time); None when a resample leaves the metric undefined too often.
    Seeded: the same evidence gives the same verdict."""
    rng = np.random.default_rng(seed)
    rows = len(truth)
    sign = 1.0 if policy.greater_is_better else -1.0
    gains = []
    for _ in range(resamples):
        pick = rng.integers(0, rows, rows)
        mine = _metrics({k: np.asarray(v)[pick] for k, v in candidate.items()}, truth[pick])
        theirs = _metrics({k: np.asarray(v)[pick] for k, v in champion.items()}, truth[pick])
        if policy.metric in mine and policy.metric in theirs:
            gains.append(sign * (mine[policy.metric] - theirs[policy.metric]))
    if len(gains) < resamples // 2:
        return None
    return float(np.quantile(gains, 1.0 - (policy.confidence or 0.95)))


def signature_problem(champion: Signature, candidate: Signature) -> str | None:
    """How the candidate's inputs differ from the champion's (None: they match)."""

    def shape(signature: Signature) -> list[tuple[str, str, tuple[Any, ...]]]:
        return [(s.name, s.dtype, tuple(s.shape)) for s in signature.inputs]

    if champion.layout == candidate.layout and shape(champion) == shape(candidate):
        return None
    return describe_input_difference(champion, candidate)


def _metrics(outputs: Mapping[str, np.ndarray], truth: np.ndarray) -> dict[str, float]:
    scored = score_outputs(outputs, truth)
    return {} if scored is None else dict(scored.metrics)


def _non_finite(outputs: Mapping[str, np.ndarray]) -> int:
    bad = 0
    for values in outputs.values():
        array = np.asarray(values)
        if array.dtype.kind == "f":
            bad += int(np.count_nonzero(~np.isfinite(array)))
    return bad


def _latency_p99_ms(
    predictor: Predictor,
    columns: Mapping[str, np.ndarray],
    sample: int,
    clock: Callable[[], float],
) -> float:
    rows = len(next(iter(columns.values()))) if columns else 0
    timings = []
    for i in range(min(rows, sample)):
        row = {name: values[i : i + 1] for name, values in columns.items()}
        started = clock()
        predictor.predict(row)
        timings.append((clock() - started) * 1000.0)
    return float(np.percentile(timings, 99)) if timings else 0.0
