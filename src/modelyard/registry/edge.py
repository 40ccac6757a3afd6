"""Edge bundles of image models: a folder a device runs with onnxruntime, numpy and
Pillow alone (no modelyard): the ONNX model, its labels, its preprocessing (the image
spec, and ``preprocess.py``: the same decoding code the server runs), its signature, a
small runner, the requirements, and ``manifest.json`` with every file's sha256.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from modelyard.errors import ValidationError
from modelyard.registry import imaging
from modelyard.registry.catalog import Catalog

REQUIREMENTS = "onnxruntime>=1.18\nnumpy>=1.26\npillow>=10.3\n"


def edge_folder_name(model: str, version: int) -> str:
    return f"{model}-v{version}-edge"


def export_edge(catalog: Catalog, ref: str, destination: Path) -> Path:
    """Write the edge bundle of image model ``ref`` into ``destination``; its folder."""
    name, number = catalog.resolve(ref)
    found = catalog.get_version(name, number)
    spec = found.signature.image
    if spec is None or found.flavour != "onnx":
        raise ValidationError(
            f"{name}/{number} is not an ONNX image model; an edge bundle holds one (export "
            "without --edge writes any model's bundle)"
        )
    files = {
        "model.onnx": catalog.artifact_bytes(found),
        "labels.json": json.dumps(list(spec.labels)).encode(),
        "preprocessing.json": json.dumps(spec.to_dict(), indent=2).encode(),
        "signature.json": json.dumps(found.signature.to_dict(), indent=2).encode(),
        "preprocess.py": Path(imaging.__file__).read_bytes(),
        # a file, never imported here: it imports ``preprocess`` as the bundle names it
        "runner.py": Path(imaging.__file__).with_name("edge_runner.py").read_bytes(),
        "requirements.txt": REQUIREMENTS.encode(),
    }
    manifest = {
        "model": name,
        "version": number,
        "lineage": found.lineage,
        "metrics": found.metrics,
        "files": {path: hashlib.sha256(data).hexdigest() for path, data in sorted(files.items())},
    }
    folder = destination / edge_folder_name(name, number)
    folder.mkdir(parents=True, exist_ok=True)
    for path, data in files.items():
        (folder / path).write_bytes(data)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return folder
