"""int8 quantization of ONNX image models with onnxruntime's tools: dynamic (weights
int8, activations quantized at run time) and static (QDQ format, activations' ranges
from a calibration set), each with per-channel and per-tensor weights, and a float
fallback for the layers quantization hurts most, found by measurement: quantize all,
and while accuracy on the held-out images drops more than allowed, keep in float the
one layer whose exclusion recovers most (onnxruntime#11415: whole networks lose points
to one sensitive layer).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)

__all__ = ["QuantizeRecipe", "RECIPES", "quantizable_nodes", "quantize", "with_fallback"]

_QUANTIZED_OPS = ("Conv", "Gemm", "MatMul")


@dataclass(frozen=True)
class QuantizeRecipe:
    """One way to quantize: ``static`` (QDQ, calibrated) or dynamic, ``per_channel``
    weights or one scale a tensor, and the nodes kept in float."""

    static: bool
    per_channel: bool
    keep_float: tuple[str, ...] = field(default=())

    @property
    def method(self) -> str:
        kind = "static" if self.static else "dynamic"
        weights = "per-channel" if self.per_channel else "per-tensor"
        return f"int8-{kind}-{weights}"


RECIPES = (
    QuantizeRecipe(static=True, per_channel=True),
    QuantizeRecipe(static=True, per_channel=False),
    QuantizeRecipe(static=False, per_channel=True),
    QuantizeRecipe(static=False, per_channel=False),
)


class _Calibration(CalibrationDataReader):  # type: ignore[misc]
    """Feeds the calibration images in batches of 32."""

    def __init__(self, pixels: np.ndarray) -> None:
        self._batches = iter(
            [{"input": pixels[i : i + 32].astype(np.float32)} for i in range(0, len(pixels), 32)]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def quantizable_nodes(model: bytes) -> list[str]:
    """Names of the graph's nodes int8 kernels exist for (convolutions, dense layers)."""
    graph = onnx.load_from_string(model).graph
    return [node.name for node in graph.node if node.op_type in _QUANTIZED_OPS]


def quantize(model: bytes, recipe: QuantizeRecipe, calibration: np.ndarray) -> bytes:
    """``model`` quantized by ``recipe`` (``calibration``: images for static ranges)."""
    # onnxruntime's tools log "consider pre-processing" on the root logger at every call
    logging.disable(logging.WARNING)
    try:
        return _quantize(model, recipe, calibration)
    finally:
        logging.disable(logging.NOTSET)


def _quantize(model: bytes, recipe: QuantizeRecipe, calibration: np.ndarray) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "model.onnx"
        target = Path(folder) / "quantized.onnx"
        source.write_bytes(model)
        if recipe.static:
            quantize_static(
                source,
                target,
                _Calibration(calibration),
                quant_format=QuantFormat.QDQ,
                per_channel=recipe.per_channel,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=list(recipe.keep_float),
                op_types_to_quantize=list(_QUANTIZED_OPS),
            )
        else:
            quantize_dynamic(
                source,
                target,
                per_channel=recipe.per_channel,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=list(recipe.keep_float),
                op_types_to_quantize=["MatMul", "Gemm", "Conv"],
            )
        return target.read_bytes()


def with_fallback(
    model: bytes,
    recipe: QuantizeRecipe,
    calibration: np.ndarray,
    accuracy_of: Callable[[bytes], float],
    target: float,
    candidates: Sequence[str] | None = None,
) -> tuple[QuantizeRecipe, bytes, float]:
    """Quantize by ``recipe``; while the held-out accuracy (``accuracy_of``) is below
    ``target``, keep in float the node whose exclusion raises it most. Returns the final
    recipe (its ``keep_float`` the measured fallback), the model and its accuracy."""
    quantized = quantize(model, recipe, calibration)
    accuracy = accuracy_of(quantized)
    remaining = [n for n in (candidates or quantizable_nodes(model)) if n not in recipe.keep_float]
    while accuracy < target and len(remaining) > 1:
        trials = []
        for node in remaining:
            trial = QuantizeRecipe(recipe.static, recipe.per_channel, (*recipe.keep_float, node))
            trial_model = quantize(model, trial, calibration)
            trials.append((accuracy_of(trial_model), node, trial, trial_model))
        best_accuracy, node, best_recipe, best_model = max(trials, key=lambda t: t[0])
        if best_accuracy <= accuracy:
            break  # no single layer helps: the candidate goes to the gate as it is
        recipe, quantized, accuracy = best_recipe, best_model, best_accuracy
        remaining.remove(node)
    return recipe, quantized, accuracy
