"""Runs an exported image model on a device without modelyard: onnxruntime, numpy and
Pillow only. ``python runner.py image.png [image2.jpg ...] [--top 3]`` prints one JSON
line per image: its label and its top labels with probabilities, as the server answers.

This file is shipped as ``runner.py`` inside an edge bundle (``modelyard export
--edge``), next to ``preprocess.py`` (modelyard's ``registry/imaging.py``, the very
step the server decodes with), ``model.onnx``, ``labels.json``, ``preprocessing.json``,
``signature.json`` and ``manifest.json`` (sha256 of every file, checked before the
model loads). modelyard never imports it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from preprocess import ImageSpec, decode  # type: ignore[import-not-found]

HERE = Path(__file__).resolve().parent


class EdgeModel:
    """The bundle's model, its files' hashes verified, ready for encoded images."""

    def __init__(self, folder: Path = HERE) -> None:
        manifest = json.loads((folder / "manifest.json").read_text())
        for name, digest in manifest["files"].items():
            if hashlib.sha256((folder / name).read_bytes()).hexdigest() != digest:
                raise SystemExit(f"{name} does not match its hash in manifest.json")
        self.spec = ImageSpec.from_dict(json.loads((folder / "preprocessing.json").read_text()))
        self.labels = json.loads((folder / "labels.json").read_text())
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(folder / "model.onnx"), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def probabilities(self, images: list[bytes]) -> np.ndarray:
        """Class probabilities of encoded PNG/JPEG ``images``, rows in order."""
        pixels = np.stack([decode(data, self.spec) for data in images]).astype(np.float32)
        return np.asarray(self.session.run(["probabilities"], {"input": pixels})[0])

    def top(self, images: list[bytes], count: int = 3) -> list[list[dict[str, Any]]]:
        """Each image's ``count`` likeliest labels with their probabilities."""
        answers = []
        for row in self.probabilities(images):
            best = np.argsort(-row, kind="stable")[:count]
            answers.append([{"label": self.labels[i], "probability": float(row[i])} for i in best])
        return answers


def main(argv: list[str]) -> int:
    count = 3
    if "--top" in argv:
        at = argv.index("--top")
        count = int(argv[at + 1])
        argv = argv[:at] + argv[at + 2 :]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    model = EdgeModel()
    for path, answer in zip(argv, model.top([Path(p).read_bytes() for p in argv], count),
                            strict=True):  # fmt: skip
        print(json.dumps({"image": path, "label": answer[0]["label"], "top": answer}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
