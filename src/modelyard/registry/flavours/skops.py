"""scikit-learn estimators that do not convert to ONNX, stored with skops (no pickle).

skops refuses to instantiate types outside its allow-list; those load only with
``trusted=True``, the same rule as pickle.
"""

from __future__ import annotations

from typing import Any

from modelyard.errors import UntrustedFormatError
from modelyard.registry.flavours.base import EstimatorPredictor, LoadOptions
from modelyard.registry.signature import Signature


class SkopsFlavour:
    name = "skops"
    pickle_based = False

    def accepts(self, model: Any) -> bool:
        return type(model).__module__.startswith("sklearn")

    def serialize(self, model: Any, signature: Signature, example: Any) -> bytes:
        import skops.io

        return bytes(skops.io.dumps(model))

    def load(self, data: bytes, signature: Signature, options: LoadOptions) -> EstimatorPredictor:
        import skops.io

        untrusted = skops.io.get_untrusted_types(data=data)
        if untrusted and not options.trusted:
            raise UntrustedFormatError(
                "this skops artifact contains types outside the safe list "
                f"({', '.join(untrusted)}); load it with trusted=True only if you trust its source"
            )
        model = skops.io.loads(data, trusted=untrusted)
        return EstimatorPredictor(model, signature, self.name)
