"""Registering a PyTorch model: converted to ONNX, served without torch, content-addressed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelyard.registry.flavours import OnnxFlavour
from modelyard.registry.signature import infer_signature
from modelyard.yard import Yard

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")

# torch.export's own use of a deprecated pytree API; nothing modelyard can act on.
pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")

Data = tuple[np.ndarray, np.ndarray]


def _mlp() -> Any:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))


def _native(model: Any, features: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return np.asarray(model(torch.from_numpy(features)).numpy())


def test_a_torch_model_registers_as_onnx_and_predicts_the_same(
    yard: Yard, classification_data: Data
) -> None:
    features, _ = classification_data
    model = _mlp()

    first = yard.register_model("mlp", model, features)
    second = yard.register_model("mlp", _mlp(), features)

    assert first.flavour == "onnx"
    assert first.artifact_digest == second.artifact_digest, "same weights, same content address"
    assert model.training, "registering must not leave the caller's model in eval mode"
    out = yard.load_model("mlp/1").predict(features)
    assert out["prediction"].shape == (len(features), 1)
    np.testing.assert_allclose(out["prediction"], _native(model, features), atol=1e-5)


def test_a_single_row_example_still_exports_a_dynamic_batch(
    yard: Yard, classification_data: Data
) -> None:
    features, _ = classification_data
    model = _mlp()

    yard.register_model("mlp", model, features[:1])

    out = yard.load_model("mlp/1").predict(features[:50])
    np.testing.assert_allclose(out["prediction"], _native(model, features[:50]), atol=1e-5)


def test_the_onnx_bytes_do_not_depend_on_where_torch_is_installed(
    classification_data: Data,
) -> None:
    features, _ = classification_data

    blob = OnnxFlavour().serialize(_mlp(), infer_signature(features), features)

    torch_dir = str(Path(torch.__file__).parent).encode()
    assert torch_dir not in blob, "stack traces in node metadata would make digests per-machine"
