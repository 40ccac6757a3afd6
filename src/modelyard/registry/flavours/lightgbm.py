"""LightGBM's own text format: loads without pickle and predicts like the original booster."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelyard.errors import UnsupportedModelError
from modelyard.registry.flavours.base import LoadOptions, Outputs, PredictorBase
from modelyard.registry.signature import Signature


class LightGBMPredictor(PredictorBase):
    flavour = "lightgbm"

    def __init__(self, data: bytes, signature: Signature, options: LoadOptions) -> None:
        import lightgbm

        self.booster = lightgbm.Booster(model_str=data.decode("utf-8"))
        self.signature = signature
        self._threads = max(options.intra_op_threads, 1)
        objective = str(self.booster.params.get("objective", ""))
        if not objective:
            objective = str(self.booster.dump_model(num_iteration=1).get("objective", ""))
        self._objective = objective.split()[0] if objective else "regression"

    def predict_prepared(self, model_input: np.ndarray | dict[str, np.ndarray]) -> Outputs:
        if isinstance(model_input, dict):
            raise UnsupportedModelError("native LightGBM models take one numeric matrix")
        raw = np.asarray(self.booster.predict(model_input, num_threads=self._threads))
        if self._objective in ("binary", "cross_entropy", "xentropy"):
            probabilities = np.column_stack([1.0 - raw, raw]).astype(np.float32)
        elif self._objective.startswith("multiclass") or self._objective == "softmax":
            probabilities = raw.astype(np.float32)
        else:
            return {"prediction": raw}
        return {
            "label": probabilities.argmax(axis=1).astype(np.int64),
            "probabilities": probabilities,
        }


class LightGBMFlavour:
    name = "lightgbm"
    pickle_based = False

    def accepts(self, model: Any) -> bool:
        return type(model).__module__.startswith("lightgbm")

    def serialize(self, model: Any, signature: Signature, example: Any) -> bytes:
        booster = getattr(model, "booster_", model)
        if not hasattr(booster, "model_to_string"):
            raise UnsupportedModelError(f"{type(model).__name__} is not a fitted LightGBM model")
        return str(booster.model_to_string()).encode("utf-8")

    def load(self, data: bytes, signature: Signature, options: LoadOptions) -> LightGBMPredictor:
        return LightGBMPredictor(data, signature, options)
