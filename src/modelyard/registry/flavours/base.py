"""The two small protocols every model format implements: ``Flavour`` and ``Predictor``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from modelyard.registry.signature import Batch, Signature, to_model_input

Outputs = dict[str, np.ndarray]


@dataclass(frozen=True)
class LoadOptions:
    """How to load a version: whether pickle-based formats may run, and runtime threads."""

    trusted: bool = False
    intra_op_threads: int = 1


class Predictor(Protocol):
    """A loaded model with one way to call it, whatever its format."""

    signature: Signature
    flavour: str

    def predict(self, batch: Batch) -> Outputs:
        """Validate ``batch`` against the signature, then run the model."""
        ...

    def predict_prepared(self, model_input: np.ndarray | dict[str, np.ndarray]) -> Outputs:
        """Run the model on input already shaped by ``to_model_input`` (the serving hot path)."""
        ...


@runtime_checkable
class TypedInputs(Protocol):
    """A predictor whose model states the dtype of each of its inputs (an ONNX graph),
    which can be narrower than the training data's: a float64 frame trained a model that
    takes float32 once converted."""

    def input_dtypes(self) -> Mapping[str, np.dtype[Any]]:
        """Model input name -> dtype (``input`` for a matrix model's one input)."""
        ...


class Flavour(Protocol):
    """A model format: recognises models it can store, serialises them, loads them back."""

    name: str
    pickle_based: bool

    def accepts(self, model: Any) -> bool: ...

    def serialize(self, model: Any, signature: Signature, example: Any) -> bytes:
        """Bytes that ``load`` turns back into a predictor; raise UnsupportedModelError if not."""
        ...

    def load(self, data: bytes, signature: Signature, options: LoadOptions) -> Predictor: ...


class PredictorBase:
    """Shared ``predict``: validate with the signature, then ``predict_prepared``."""

    signature: Signature
    flavour: str

    def predict(self, batch: Batch) -> Outputs:
        return self.predict_prepared(to_model_input(self.signature, batch))

    def predict_prepared(self, model_input: np.ndarray | dict[str, np.ndarray]) -> Outputs:
        raise NotImplementedError


class EstimatorPredictor(PredictorBase):
    """A scikit-learn-style estimator in memory (from skops, pickle or a native booster)."""

    def __init__(self, estimator: Any, signature: Signature, flavour: str) -> None:
        self.estimator = estimator
        self.signature = signature
        self.flavour = flavour

    def predict_prepared(self, model_input: np.ndarray | dict[str, np.ndarray]) -> Outputs:
        features: Any = model_input
        if isinstance(model_input, dict):
            import pandas as pd  # a columns-layout sklearn model was fitted on a DataFrame

            features = pd.DataFrame(model_input)
        if hasattr(self.estimator, "predict_proba"):
            probabilities = np.asarray(self.estimator.predict_proba(features), dtype=np.float32)
            classes = np.asarray(self.estimator.classes_)
            return {"label": classes[probabilities.argmax(axis=1)], "probabilities": probabilities}
        return {"prediction": np.asarray(self.estimator.predict(features))}
