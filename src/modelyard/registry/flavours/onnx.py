"""ONNX, the preferred format: converted from scikit-learn (skl2onnx), LightGBM
(onnxmltools) and PyTorch (torch.onnx), run by onnxruntime.

Converters are optional extras and imported only when a model of their kind is
registered; loading needs onnxruntime alone.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

import numpy as np
import onnxruntime as ort

from modelyard.errors import UnsupportedModelError
from modelyard.registry.flavours.base import LoadOptions, Outputs, PredictorBase
from modelyard.registry.signature import Signature, example_columns

# Output names of the converters, renamed to modelyard's: "label"/"probabilities"
# for classifiers, "prediction" for everything else.
_OUTPUT_NAMES = {"label": "label", "probabilities": "probabilities", "variable": "prediction"}
_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}
TARGET_OPSET = 17
LIGHTGBM_OPSET = 15  # the highest onnxmltools 1.16 converts LightGBM to
# The lowest opset torch.onnx translates to without a lossy down-conversion; pinned so
# a new torch release does not change the bytes (and the digest) of the same weights.
TORCH_OPSET = 18


class OnnxPredictor(PredictorBase):
    """An onnxruntime session with modelyard's input/output names."""

    flavour = "onnx"

    def __init__(self, data: bytes, signature: Signature, options: LoadOptions) -> None:
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = options.intra_op_threads
        session_options.inter_op_num_threads = 1
        session_options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Errors only: LightGBM's converter declares its label output one row long, and
        # onnxruntime warns about it on stderr for every larger batch.
        session_options.log_severity_level = 3
        self.session = ort.InferenceSession(
            data, sess_options=session_options, providers=["CPUExecutionProvider"]
        )
        self.signature = signature
        self._inputs = [
            (i.name, _ORT_TYPES.get(i.type, np.float32)) for i in self.session.get_inputs()
        ]
        outputs = [o.name for o in self.session.get_outputs()]
        self._output_names = outputs
        self._renamed = [_OUTPUT_NAMES.get(name, name) for name in outputs]

    def input_dtypes(self) -> dict[str, np.dtype[Any]]:
        return {name: np.dtype(dtype) for name, dtype in self._inputs}

    def predict_prepared(self, model_input: np.ndarray | dict[str, np.ndarray]) -> Outputs:
        if isinstance(model_input, np.ndarray):
            name, dtype = self._inputs[0]
            feed: dict[str, np.ndarray] = {name: model_input.astype(dtype, copy=False)}
        else:
            feed = {
                name: np.asarray(model_input[name]).astype(dtype, copy=False).reshape(-1, 1)
                for name, dtype in self._inputs
            }
        results = self.session.run(self._output_names, feed)
        return {name: np.asarray(value) for name, value in zip(self._renamed, results, strict=True)}


class OnnxFlavour:
    """ONNX models, and models that convert to ONNX."""

    name = "onnx"
    pickle_based = False

    def accepts(self, model: Any) -> bool:
        return _kind(model) is not None

    def serialize(self, model: Any, signature: Signature, example: Any) -> bytes:
        kind = _kind(model)
        try:
            if kind == "onnx":
                return bytes(model.SerializeToString())
            if kind == "sklearn":
                return _from_sklearn(model, signature, example)
            if kind == "lightgbm":
                return _from_lightgbm(model, signature)
            if kind == "torch":
                return _from_torch(model, signature, example)
        except UnsupportedModelError:
            raise
        except Exception as error:  # converters raise anything; we report one type
            raise UnsupportedModelError(
                f"cannot convert {type(model).__name__} to ONNX: {type(error).__name__}: {error}"
            ) from error
        raise UnsupportedModelError(f"{type(model).__name__} has no ONNX converter")

    def load(self, data: bytes, signature: Signature, options: LoadOptions) -> OnnxPredictor:
        return OnnxPredictor(data, signature, options)


def _kind(model: Any) -> str | None:
    module = type(model).__module__
    if module.startswith("onnx") and hasattr(model, "SerializeToString"):
        return "onnx"
    if module.startswith("lightgbm"):
        return "lightgbm"
    if module.startswith("sklearn") or module.startswith("imblearn"):
        return "sklearn"
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        return "torch"
    return None


def _final_estimator(model: Any) -> Any:
    return model.steps[-1][1] if hasattr(model, "steps") else model


def _from_sklearn(model: Any, signature: Signature, example: Any) -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType

    options = {}
    if hasattr(_final_estimator(model), "predict_proba"):
        options[id(_final_estimator(model))] = {"zipmap": False}
    if signature.layout == "matrix":
        initial_types = [("input", FloatTensorType([None, len(signature.inputs)]))]
    else:
        types = {
            "f": FloatTensorType,
            "i": Int64TensorType,
            "u": Int64TensorType,
            "b": Int64TensorType,
        }
        initial_types = [
            (s.name, types.get(np.dtype(s.dtype).kind, StringTensorType)([None, 1]))
            for s in signature.inputs
        ]
    del example  # the declared types, not the example, fix the graph's inputs
    onx = to_onnx(model, initial_types=initial_types, options=options, target_opset=TARGET_OPSET)
    return bytes(onx.SerializeToString())


def _from_lightgbm(model: Any, signature: Signature) -> bytes:
    if signature.layout != "matrix":
        raise UnsupportedModelError("LightGBM models convert to ONNX only from numeric features")
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    onx = convert_lightgbm(
        model,
        initial_types=[("input", FloatTensorType([None, len(signature.inputs)]))],
        zipmap=False,
        target_opset=LIGHTGBM_OPSET,
    )
    return bytes(onx.SerializeToString())


def _from_torch(model: Any, signature: Signature, example: Any) -> bytes:
    if signature.layout != "matrix":
        raise UnsupportedModelError("torch models are registered from one numeric input matrix")
    # torch.onnx's exporter imports onnxscript only halfway through an export.
    if importlib.util.find_spec("onnxscript") is None:
        raise UnsupportedModelError(
            "converting a torch model to ONNX needs onnxscript: pip install 'modelyard[torch]'"
        )
    import torch

    columns = example_columns(example, signature.input_names)
    matrix = np.column_stack(list(columns.values())).astype(np.float32)
    # torch.export fixes a dimension of size 0 or 1, so the batch axis needs two rows.
    sample = torch.from_numpy(np.resize(matrix[:2], (2, matrix.shape[1])))
    was_training = model.training
    model.eval()
    try:
        program = torch.onnx.export(
            model,
            (sample,),
            input_names=["input"],
            output_names=["prediction"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            opset_version=TORCH_OPSET,
            dynamo=True,
            verbose=False,
        )
    finally:
        model.train(was_training)
    if program is None:  # only the legacy exporter returns None
        raise UnsupportedModelError("torch.onnx.export returned no ONNX program")
    proto = program.model_proto
    _strip_node_metadata(proto.graph)
    for function in proto.functions:
        _strip_node_metadata(function)
    return bytes(proto.SerializeToString())


def _strip_node_metadata(graph: Any) -> None:
    """Drop per-node debug metadata (stack traces with absolute paths, FX node text).

    It says where torch is installed, not what the model computes; left in, the same
    weights would get a different content address on every machine.
    """
    for node in graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
        for attribute in node.attribute:
            if attribute.HasField("g"):
                _strip_node_metadata(attribute.g)
            for subgraph in attribute.graphs:
                _strip_node_metadata(subgraph)
