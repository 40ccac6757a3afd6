"""Measuring a candidate against the champion on held-out rows: the gate's evidence.

Both models predict the same held-out rows through their registered format (the
candidate as ``Registry.prepare`` made it, so the gate judges the bytes that will be
stored), their outputs are scored by ``monitoring.live_metrics.score_outputs`` (the
same metrics the live monitor computes from feedback), non-finite outputs are
counted, and the candidate's latency is timed one row at a time on a sample.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from modelyard.errors import ModelyardError
from modelyard.monitoring.live_metrics import score_outputs
from modelyard.pipelines.gate import GateEvidence, GatePolicy
from modelyard.registry import Predictor, Signature
from modelyard.registry.signature import example_columns
from modelyard.routing.deployment import describe_input_difference

__all__ = ["measure", "signature_problem"]


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
    if champion is not None:
        problem = signature_problem(champion.signature, candidate.signature)
        if problem is None:
            try:
                champion_metrics = _metrics(champion.predict(columns), truth)
            except ModelyardError as error:
                problem = f"the champion cannot predict the held-out rows: {error.message}"
    return GateEvidence(
        candidate=_metrics(outputs, truth),
        champion=champion_metrics,
        holdout_rows=len(truth),
        non_finite_outputs=_non_finite(outputs),
        latency_p99_ms=_latency_p99_ms(candidate, columns, policy.latency_sample, clock),
        signature_problem=problem,
    )


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
