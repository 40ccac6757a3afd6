"""``modelyard demo vision``: an image classifier made fit for a device, end to end.

Train the CNN on scikit-learn's digits, prune it, quantize it (each candidate gated on
accuracy, overall and per class, against its parent), serve the float champion and
send it PNGs, judge the int8 version with the rollout's decisions check (the champion
re-run on the canary's inputs, as the runner does in a canary) next to a quantization
that lost one digit, export the edge bundle, and print the comparison table.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch

from modelyard.config import load_settings
from modelyard.config.settings import environment_without_settings
from modelyard.demos.fraud.services import free_port
from modelyard.errors import ModelyardError
from modelyard.optimize import comparison_rows
from modelyard.optimize.cnn import CnnConfig, export_onnx, from_npz
from modelyard.optimize.measure import Timing, onnx_probabilities, onnx_session
from modelyard.optimize.optimizer import Optimizer
from modelyard.optimize.quantize import RECIPES
from modelyard.registry.edge import export_edge
from modelyard.registry.imaging import encode_png
from modelyard.routing.analysis import ArmTraffic, check_decisions
from modelyard.routing.canary import RolloutPolicy
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.yard import Yard

__all__ = ["VisionResult", "run_vision_demo"]

MODEL = "digits"
FAST = CnnConfig(size=16, conv1=8, conv2=16, hidden=32, epochs=8, learning_rate=5e-3)
FULL = CnnConfig()  # 32x32, conv 16 and 32 channels, dense 128
# The smallest run that still tells the story (the test suite's): 12x12 digits, one
# fine-tuning epoch, two quantization recipes, short timings.
TINY = CnnConfig(size=12, conv1=8, conv2=16, hidden=32, epochs=6, learning_rate=5e-3)


@dataclass(frozen=True)
class VisionResult:
    """What the demo did: the comparison rows, the story lines, the edge bundle."""

    home: Path
    rows: list[dict[str, Any]]
    story: list[str]
    edge: Path


def run_vision_demo(
    out: Path, *, fast: bool = False, tiny: bool = False, say: Any = print
) -> VisionResult:
    """Run the demo in ``out`` (replaced); ``say`` prints each step as it happens.
    ``fast``: 16x16 digits and a smaller CNN; ``tiny``: smaller still (``TINY``)."""
    if out.exists():
        shutil.rmtree(out)
    home = out / "home"
    story: list[str] = []

    def tell(line: str) -> None:
        story.append(line)
        say(line)

    torch.set_num_threads(1)
    config = TINY if tiny else FAST if fast else FULL
    timing = Timing(30, 5, 2) if tiny else Timing(100, 20, 5)
    recipes = RECIPES[:2] if tiny else RECIPES  # tiny: the static ones
    with Yard(load_settings(home=home, environ={})) as yard:
        events = SqlDeploymentRepository(yard.db)
        optimizer = Optimizer(yard.registry, yard.artifacts, events, timing=timing)
        started = time.perf_counter()
        champion = optimizer.train_digits(MODEL, config)
        tell(
            f"trained {MODEL}/{champion.version} ({config.size}x{config.size} digits) in "
            f"{time.perf_counter() - started:.0f} s: accuracy {champion.metrics['accuracy']:.1%}"
        )
        ref = f"{MODEL}/{champion.version}"
        pruned = optimizer.prune(ref, fraction=0.5, epochs=2 if tiny else 5)
        steps = [("pruned", ref, pruned), ("quantized", ref, optimizer.quantize(ref, recipes))]
        if pruned.registered is not None:
            pruned_ref = f"{MODEL}/{pruned.registered.version}"
            steps.append(("pruned+int8", pruned_ref, optimizer.quantize(pruned_ref, recipes)))
        for what, parent, outcome in steps:
            for candidate in outcome.candidates:
                verdict = "passed" if candidate.verdict.passed else candidate.verdict.reason
                tell(f"{what}: {candidate.method} of {parent}: {verdict}")
            if outcome.registered is not None:
                tell(f"registered {MODEL}/{outcome.registered.version} ({what}, parent {parent})")
        versions = sorted(yard.registry.list_versions(MODEL), key=lambda v: v.version)
        # the champion's own int8 version is the canary; the smallest version ships
        int8 = next(
            (v for v in versions if v.tags.get("optimize.method", "").startswith("int8")), None
        )
        smallest = min(versions, key=lambda v: v.artifact_size)
        measured = [optimizer.figures(f"{MODEL}/{v.version}") for v in versions]
        rows = comparison_rows(
            [(f"{v.model}/{v.version}", v.tags.get("optimize.method", "-"), f) for v, f in measured]
        )
        data = optimizer.held_out(config, config.seed)
        images = data.pixels[:8].reshape(8, config.size, config.size).astype(np.uint8)
        served = _serve_and_ask(home, ref, images)
        tell(f"served {ref}: 8 PNGs answered {served}, held-out labels {data.labels[:8].tolist()}")
        if int8 is not None:
            traffic = np.concatenate([data.train_pixels, data.pixels])
            weights = yard.artifacts.get_bytes(champion.lineage["vision"]["weights"])
            broken = from_npz(config, weights)
            with torch.no_grad():
                broken.fc2.bias[3] -= 30.0  # what a bad calibration can do to one class
            champion_model = yard.registry.artifact_bytes(champion)
            for name, model in (
                (f"{MODEL}/{int8.version} (int8)", yard.registry.artifact_bytes(int8)),
                ("an int8 build that lost digit 3", export_onnx(broken)),
            ):
                check = _canary_check(champion_model, model, traffic)
                tell(f"canary {name} vs {ref}: {check.outcome.value}: {check.summary}")
        edge = export_edge(yard.registry, f"{MODEL}/{smallest.version}", out / "edge")
        tell(f"edge bundle: {edge} (python {edge / 'runner.py'} image.png)")
    return VisionResult(home, rows, story, edge)


def _canary_check(champion: bytes, canary: bytes, pixels: np.ndarray) -> Any:
    before = onnx_probabilities(onnx_session(champion), pixels).argmax(1)
    after = onnx_probabilities(onnx_session(canary), pixels).argmax(1)
    n, changed = len(before), int((before != after).sum())
    traffic = ArmTraffic(n, 0, decisions_compared=n, decisions_changed=changed)
    return check_decisions(RolloutPolicy(), traffic, traffic)


def _serve_and_ask(home: Path, ref: str, images: np.ndarray) -> list[int]:
    """Start ``modelyard serve`` for ``ref``, send ``images`` as PNGs, stop it."""
    port = free_port()
    env = environment_without_settings()
    env["MODELYARD_HOME"] = str(home)
    log = home / "demo-server.out"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "modelyard", "serve", "--model", ref, "--port", str(port),
             "--workers", "1"],
            env=env, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise ModelyardError(f"the demo's server exited:\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        instances = [{"b64": base64.b64encode(encode_png(i)).decode()} for i in images]
        name = ref.split("/")[0]
        response = httpx.post(f"{url}/v1/models/{name}:predict", json={"instances": instances},
                              timeout=30)  # fmt: skip
        response.raise_for_status()
        return [int(p["label"]) for p in response.json()["predictions"]]
    finally:
        server.terminate()
        server.wait(30)
