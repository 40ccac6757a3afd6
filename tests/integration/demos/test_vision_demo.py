"""``modelyard demo vision --tiny`` as a user runs it: the table of versions, the story
(served, canaried) and an edge bundle a device can run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

DEMO_TIMEOUT_S = 180  # the tiny run takes 25-40 s on a busy 2-core machine


def test_the_tiny_demo_prints_the_table_and_writes_the_edge_bundle(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    out = tmp_path / "vd"
    run = subprocess.run(
        [sys.executable, "-m", "modelyard", "demo", "vision", "--tiny", "--out", str(out),
         "--json"],
        env=env, capture_output=True, text=True, timeout=DEMO_TIMEOUT_S,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(run.stdout)
    rows = result["rows"]
    assert rows[0]["model"] == "digits/1"
    assert {"size_kb", "p50_ms_b1", "accuracy", "worst_class"} <= set(rows[0])
    story = "\n".join(result["story"])
    assert "served digits/1: 8 PNGs answered" in story
    assert "canary an int8 build that lost digit 3" in story
    edge = Path(result["edge"])
    manifest = json.loads((edge / "manifest.json").read_text())
    assert set(manifest["files"]) == {
        "model.onnx", "labels.json", "preprocessing.json", "signature.json", "preprocess.py",
        "runner.py", "requirements.txt",
    }  # fmt: skip
    assert json.loads((edge / "labels.json").read_text()) == [str(i) for i in range(10)]
