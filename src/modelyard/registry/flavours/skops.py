"""scikit-learn estimators that do not convert to ONNX, stored with skops (no pickle).

skops refuses to instantiate types outside its allow-list; those load only with
``trusted=True``, the same rule as pickle. skops writes a zip whose entries carry
the time of writing; the archive is rewritten with fixed times so that the same
model always gives the same bytes (a retrain with the same seed and data registers
an identical artifact).
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Any

from modelyard.errors import UntrustedFormatError
from modelyard.registry.flavours.base import EstimatorPredictor, LoadOptions
from modelyard.registry.signature import Signature

_OBJECT_ID = re.compile(r'"__id__": (\d+)')


class SkopsFlavour:
    name = "skops"
    pickle_based = False

    def accepts(self, model: Any) -> bool:
        return type(model).__module__.startswith("sklearn")

    def serialize(self, model: Any, signature: Signature, example: Any) -> bytes:
        import skops.io

        return canonical_zip(bytes(skops.io.dumps(model)))

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


def canonical_zip(data: bytes) -> bytes:
    """skops' archive ``data`` made reproducible: entries and ``__id__``s numbered by their
    order of first mention in ``schema.json`` (skops uses object ids for both), every
    entry dated 1980-01-01."""
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        files = {info.filename: (info, source.read(info)) for info in source.infolist()}
    schema_info, schema_bytes = files.pop("schema.json")
    schema = schema_bytes.decode()
    mentioned = sorted(files, key=lambda name: (schema.find(f'"{name}"'), name))
    renamed = {name: f"{i}{Path(name).suffix}" for i, name in enumerate(mentioned)}
    for old, new in renamed.items():
        schema = schema.replace(f'"{old}"', f'"{new}"')
    ids: dict[str, str] = {}
    schema = _OBJECT_ID.sub(lambda m: f'"__id__": {ids.setdefault(m[1], str(len(ids)))}', schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        entries = [("schema.json", schema_info, schema.encode())]
        entries += [(renamed[n], files[n][0], files[n][1]) for n in mentioned]
        for name, info, content in entries:
            fixed = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type = info.compress_type
            fixed.external_attr = 0o644 << 16
            target.writestr(fixed, content)
    return out.getvalue()
