"""Measuring a model on this CPU: file size, parameters, latency at batch 1 and 32
(p50/p99) and throughput, and accuracy on held-out images overall and per class.

Latency is wall-clock time of ``session.run`` on one thread (what a single-threaded
serving worker or an edge device gets), after warm-up calls; the figures are only
comparable between models measured in the same process on the same machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort

from modelyard.optimize.gate import Figures

__all__ = ["Timing", "accuracy_by_class", "measure_onnx", "onnx_session", "time_calls"]


@dataclass(frozen=True)
class Timing:
    """How many timed calls at each batch size, after how many warm-up calls."""

    calls_1: int = 200
    calls_32: int = 40
    warmup: int = 10


def onnx_session(model: bytes, threads: int = 1) -> ort.InferenceSession:
    """An onnxruntime CPU session over ``model`` with ``threads`` intra-op threads."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def onnx_probabilities(session: ort.InferenceSession, pixels: np.ndarray) -> np.ndarray:
    """The ``probabilities`` output of an image model's session for ``pixels``."""
    return np.asarray(session.run(["probabilities"], {"input": pixels.astype(np.float32)})[0])


def accuracy_by_class(
    labels: np.ndarray, predicted: np.ndarray, classes: Sequence[str]
) -> tuple[float, dict[str, float]]:
    """Overall accuracy and each class's (recall: the share of its images predicted
    right); ``classes[i]`` names class index ``i``. A class with no images is left out."""
    correct = labels == predicted
    per_class = {
        classes[i]: float(correct[labels == i].mean())
        for i in range(len(classes))
        if (labels == i).any()
    }
    return float(correct.mean()), per_class


def time_calls(
    call: Callable[[np.ndarray], object], batch: np.ndarray, timing_calls: int, warmup: int
) -> np.ndarray:
    """Seconds each of ``timing_calls`` calls of ``call(batch)`` took, after ``warmup``."""
    for _ in range(warmup):
        call(batch)
    seconds = np.empty(timing_calls)
    for i in range(timing_calls):
        started = time.perf_counter()
        call(batch)
        seconds[i] = time.perf_counter() - started
    return seconds


def latency_figures(
    call: Callable[[np.ndarray], object], pixels: np.ndarray, timing: Timing
) -> tuple[float, float, float, float, float]:
    """p50/p99 milliseconds at batch 1 and 32, and rows a second at batch 32."""
    batch32 = np.resize(pixels, (32, pixels.shape[1])).astype(np.float32)
    one = time_calls(call, batch32[:1], timing.calls_1, timing.warmup)
    many = time_calls(call, batch32, timing.calls_32, timing.warmup)
    p50_1, p99_1 = np.percentile(one, [50, 99]) * 1000
    p50_32, p99_32 = np.percentile(many, [50, 99]) * 1000
    return float(p50_1), float(p99_1), float(p50_32), float(p99_32), 32_000 / float(p50_32)


def parameter_count(model: bytes) -> int:
    """Values stored in the graph's initialisers (weights and biases, whatever their
    type: an int8 weight counts one like a float one)."""
    graph = onnx.load_from_string(model).graph
    return sum(
        int(np.prod(init.dims))
        for init in graph.initializer
        if init.data_type != onnx.TensorProto.INT64  # shapes, not weights
    )


def measure_onnx(
    model: bytes,
    pixels: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    timing: Timing = Timing(),
    *,
    parameters: int | None = None,
    sparsity: float = 0.0,
) -> Figures:
    """Every figure of an ONNX image model, on held-out ``pixels`` and ``labels``."""
    session = onnx_session(model)
    predicted = onnx_probabilities(session, pixels).argmax(axis=1)
    accuracy, per_class = accuracy_by_class(labels, predicted, classes)
    latency = latency_figures(lambda batch: onnx_probabilities(session, batch), pixels, timing)
    return Figures(
        len(model), parameter_count(model) if parameters is None else parameters, *latency,
        accuracy, per_class, sparsity,
    )  # fmt: skip
