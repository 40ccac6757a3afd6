"""Pickle (joblib): any Python object, so it runs arbitrary code when loaded.

Stored and loaded only when the caller passes ``trusted=True``.
"""

from __future__ import annotations

import io
from typing import Any

from modelyard.errors import UntrustedFormatError
from modelyard.registry.flavours.base import EstimatorPredictor, LoadOptions
from modelyard.registry.signature import Signature

REFUSAL = (
    "pickle/joblib artifacts can run arbitrary code when loaded; pass trusted=True "
    "only for a model whose source you trust, or register it in a safe format (ONNX, skops)"
)


class PickleFlavour:
    name = "pickle"
    pickle_based = True

    def accepts(self, model: Any) -> bool:
        return hasattr(model, "predict")

    def serialize(self, model: Any, signature: Signature, example: Any) -> bytes:
        import joblib

        buffer = io.BytesIO()
        joblib.dump(model, buffer)
        return buffer.getvalue()

    def load(self, data: bytes, signature: Signature, options: LoadOptions) -> EstimatorPredictor:
        if not options.trusted:
            raise UntrustedFormatError(REFUSAL)
        import joblib

        return EstimatorPredictor(joblib.load(io.BytesIO(data)), signature, self.name)
