"""int8 quantization's float fallback: the layer that hurts most is kept in float."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from modelyard.optimize.quantize import QuantizeRecipe, quantizable_nodes, quantize, with_fallback

# What quantizing each layer costs in this test's pretend accuracy: mm2 is the fragile one.
COST = {"mm1": 0.05, "mm2": 0.30}


def two_layer_model() -> bytes:
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(size=(4, 8)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(size=(8, 3)).astype(np.float32), "w2")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input", "w1"], ["h"], name="mm1"),
            helper.make_node("Relu", ["h"], ["r"], name="relu"),
            helper.make_node("MatMul", ["r", "w2"], ["probabilities"], name="mm2"),
        ],
        "two",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 3])],
        [w1, w2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return bytes(model.SerializeToString())


def quantized_layers(model: bytes) -> set[str]:
    """The MatMuls whose weight comes out of a DequantizeLinear (quantized in QDQ)."""
    graph = onnx.load_from_string(model).graph
    dequantized = {out for n in graph.node if n.op_type == "DequantizeLinear" for out in n.output}
    return {n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] in dequantized}


def pretend_accuracy(model: bytes) -> float:
    return 1.0 - sum(COST[name] for name in quantized_layers(model))


CALIBRATION = np.random.default_rng(1).normal(size=(64, 4)).astype(np.float32)


def test_static_quantization_quantizes_every_layer_it_can() -> None:
    model = two_layer_model()
    assert quantizable_nodes(model) == ["mm1", "mm2"]
    quantized = quantize(model, QuantizeRecipe(static=True, per_channel=False), CALIBRATION)
    assert quantized_layers(quantized) == {"mm1", "mm2"}


def test_the_fallback_keeps_the_layer_that_hurts_most_in_float() -> None:
    recipe, model, accuracy = with_fallback(
        two_layer_model(),
        QuantizeRecipe(static=True, per_channel=True),
        CALIBRATION,
        pretend_accuracy,
        target=0.9,
    )
    assert recipe.keep_float == ("mm2",)
    assert quantized_layers(model) == {"mm1"}
    assert accuracy == pytest.approx(1.0 - COST["mm1"])


def test_no_fallback_when_the_quantized_model_is_good_enough() -> None:
    recipe, _, accuracy = with_fallback(
        two_layer_model(),
        QuantizeRecipe(static=True, per_channel=False),
        CALIBRATION,
        pretend_accuracy,
        target=0.5,
    )
    assert recipe.keep_float == ()
    assert recipe.method == "int8-static-per-tensor"
    assert accuracy == pytest.approx(1.0 - COST["mm1"] - COST["mm2"])
