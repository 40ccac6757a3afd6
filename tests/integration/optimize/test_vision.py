"""The image model end to end: trained, quantized under the accuracy gate, served with
images, and a candidate that breaks one class refused. One tiny CNN (16x16 digits) is
trained once for the module: seconds, not minutes; a second one on the user's own
images (three digits in class-named folders), whose answers carry the class names."""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import pytest
import torch
from sklearn.datasets import load_digits
from typer.testing import CliRunner

from modelyard.cli.main import app
from modelyard.config import load_settings
from modelyard.errors import ValidationError
from modelyard.loadtest.generator import LoadPlan, LoadResult, run_load
from modelyard.optimize.cnn import CnnConfig, export_onnx, from_npz
from modelyard.optimize.measure import Timing, onnx_probabilities, onnx_session
from modelyard.optimize.optimizer import Optimizer
from modelyard.registry.edge import export_edge
from modelyard.registry.imaging import encode_png
from modelyard.routing import DeploymentStore, RolloutController, RolloutPolicy
from modelyard.routing.analysis import ArmTraffic, Outcome, check_decisions
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.yard import Yard

CONFIG = CnnConfig(size=16, conv1=8, conv2=16, hidden=32, epochs=8, learning_rate=5e-3)
# Quantized and float agree on at least this share of held-out top-1 answers, and no
# class probability moves by more than this much.
AGREEMENT = 0.97
PROBABILITY_TOLERANCE = 0.15
# The user's own classes: three of the digits, in folders named after them.
NAMED = {"zero": 0, "one": 1, "seven": 7}


def own_images(folder: Path) -> dict[str, list[bytes]]:
    """Three digit classes as 8x8 PNGs in class-named folders (``--data``'s folder form)."""
    digits = load_digits()
    files: dict[str, list[bytes]] = {}
    for name, digit in NAMED.items():
        (folder / name).mkdir(parents=True)
        images = digits.images[digits.target == digit][:60]
        files[name] = [encode_png(np.rint(i * 255 / 16).astype(np.uint8)) for i in images]
        for i, png in enumerate(files[name]):
            (folder / name / f"{i:03}.png").write_bytes(png)
    return files


@pytest.fixture(scope="module")
def vision(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Yard, Optimizer]]:
    home = tmp_path_factory.mktemp("vision")
    torch.set_num_threads(1)
    yard = Yard(load_settings(home=home, environ={}))
    optimizer = Optimizer(
        yard.registry, yard.artifacts, SqlDeploymentRepository(yard.db), timing=Timing(30, 5, 2)
    )
    optimizer.train_digits("digits", CONFIG)
    own_images(home / "own")
    optimizer.train_digits("named", CONFIG, data=home / "own")
    yield yard, optimizer
    yard.close()


@pytest.fixture(scope="module")
def quantized(vision: tuple[Yard, Optimizer]) -> Any:
    _, optimizer = vision
    return optimizer.quantize("digits/1")


def test_quantization_registers_a_version_naming_parent_and_method(quantized: Any) -> None:
    assert [c.method for c in quantized.candidates] == [
        "int8-static-per-channel", "int8-static-per-tensor",
        "int8-dynamic-per-channel", "int8-dynamic-per-tensor",
    ]  # fmt: skip
    version = quantized.registered
    assert version is not None
    assert version.parent_version == 1
    made = version.lineage["vision"]
    assert made["parent"] == "digits/1"
    assert made["method"].startswith("int8-")
    assert version.artifact_size * 1.5 < quantized.parent_figures.size_bytes
    assert version.signature.image is not None
    assert version.signature.image.height == 16


def test_an_int8_version_is_not_quantized_again(
    vision: tuple[Yard, Optimizer], quantized: Any
) -> None:
    _, optimizer = vision
    with pytest.raises(ValidationError, match="already int8"):
        optimizer.quantize(f"digits/{quantized.registered.version}")


def test_quantized_predictions_agree_with_float(
    vision: tuple[Yard, Optimizer], quantized: Any
) -> None:
    yard, optimizer = vision
    data = optimizer.held_out(CONFIG, CONFIG.seed)
    float_model = yard.registry.artifact_bytes(yard.registry.get_version("digits", 1))
    expected = onnx_probabilities(onnx_session(float_model), data.pixels)
    for candidate in quantized.candidates:
        got = onnx_probabilities(onnx_session(candidate.model), data.pixels)
        agreement = float((got.argmax(1) == expected.argmax(1)).mean())
        assert agreement >= AGREEMENT, candidate.method
        assert float(np.abs(got - expected).max()) <= PROBABILITY_TOLERANCE, candidate.method


def test_a_candidate_that_breaks_one_class_is_refused_and_recorded(
    vision: tuple[Yard, Optimizer],
) -> None:
    yard, optimizer = vision
    parent = yard.registry.get_version("digits", 1)
    net = from_npz(CONFIG, yard.artifacts.get_bytes(parent.lineage["vision"]["weights"]))
    with torch.no_grad():
        net.fc2.bias[3] -= 8.0  # digit 3 all but disappears; the rest barely move
    outcome = optimizer.consider("digits/1", export_onnx(net), "broken-3")
    assert outcome.registered is None
    (candidate,) = outcome.candidates
    assert "class '3'" in candidate.verdict.reason
    events = SqlDeploymentRepository(yard.db).events("digits", "optimize.rejected")
    assert events
    assert events[0].payload["method"] == "broken-3"
    assert events[0].payload["figures"]["class_accuracy"]["3"] < 0.5


def test_pruning_removes_channels_for_real(vision: tuple[Yard, Optimizer]) -> None:
    _, optimizer = vision
    outcome = optimizer.prune("digits/1", fraction=0.5, epochs=2, register=False)
    (candidate,) = outcome.candidates
    assert candidate.detail["channels"] == [4, 8]
    assert candidate.figures.parameters < outcome.parent_figures.parameters * 0.6
    assert candidate.figures.size_bytes < outcome.parent_figures.size_bytes * 0.6


def test_a_model_trained_on_own_images_is_named_after_their_classes(
    vision: tuple[Yard, Optimizer],
) -> None:
    yard, _ = vision
    version = yard.registry.get_version("named", 1)
    assert version.signature.image is not None
    assert version.signature.image.labels == ("one", "seven", "zero")  # the folders, sorted
    assert version.lineage["vision"]["dataset"] == str((Path(yard.settings.home) / "own").resolve())
    assert version.metrics["accuracy"] > 0.9


def cli(home: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"MODELYARD_HOME": str(home)})
    return result.exit_code, result.output


def test_quantize_and_prune_on_own_images_from_the_cli(
    vision: tuple[Yard, Optimizer], tmp_path: Path
) -> None:
    """``--data``: an .npz of the user's images (string labels, another size than the
    model's) calibrates, fine-tunes and judges; without it the command says what to pass."""
    yard, optimizer = vision
    home = Path(yard.settings.home)
    digits = load_digits()
    chosen = np.isin(digits.target, list(NAMED.values()))
    names = {digit: name for name, digit in NAMED.items()}
    images = np.rint(digits.images[chosen] * 255 / 16).astype(np.uint8)
    labels = np.array([names[d] for d in digits.target[chosen]])
    np.savez(tmp_path / "mine.npz", images=images, labels=labels)
    code, out = cli(home, "optimize", "quantize", "named/1")
    assert code != 0
    assert "was trained on" in out
    assert "--data" in out
    code, out = cli(home, "optimize", "quantize", "named/1", "--data", str(tmp_path / "mine.npz"),
                    "--json")  # fmt: skip
    assert code == 0, out
    answer = json.loads(out)
    assert answer["registered"] is not None, answer
    version = yard.registry.get_version("named", answer["registered"])
    assert version.lineage["vision"]["dataset"] == str((tmp_path / "mine.npz").resolve())
    assert version.signature.image is not None
    assert version.signature.image.labels == ("one", "seven", "zero")
    outcome = optimizer.prune(
        "named/1", fraction=0.5, epochs=1, register=False, data=tmp_path / "mine.npz"
    )
    assert outcome.candidates[0].figures.class_accuracy.keys() == {"one", "seven", "zero"}
    code, out = cli(home, "optimize", "quantize", "named/1", "--data", str(tmp_path / "no.npz"))
    assert code != 0
    assert "expected an .npz file" in out


@pytest.fixture(scope="module")
def server(vision: tuple[Yard, Optimizer], server_starter: Callable[..., Any]) -> Iterator[Any]:
    yard, _ = vision
    started = server_starter(Path(yard.settings.home), ["digits/1", "named/1"], grpc=True)
    yield started
    started.stop()


def test_answers_carry_the_class_names(server: Any, vision: tuple[Yard, Optimizer]) -> None:
    yard, _ = vision
    seven = (Path(yard.settings.home) / "own" / "seven" / "000.png").read_bytes()
    zero = (Path(yard.settings.home) / "own" / "zero" / "000.png").read_bytes()
    encoded = [base64.b64encode(png).decode() for png in (seven, zero)]
    records = httpx.post(
        f"{server.url}/v1/models/named:predict",
        json={"instances": [{"b64": b} for b in encoded], "top_k": 2},
        timeout=30,
    )
    assert records.status_code == 200, records.text
    first, second = records.json()["predictions"]
    assert (first["label"], second["label"]) == ("seven", "zero")
    assert [t["label"] for t in first["top"]][0] == "seven"
    assert len(first["top"]) == 2
    assert first["top"][0]["probability"] == pytest.approx(max(first["probabilities"]))
    default = httpx.post(
        f"{server.url}/v1/models/named:predict", json={"instances": [{"b64": encoded[0]}]},
        timeout=30,
    ).json()["predictions"][0]  # fmt: skip
    assert len(default["top"]) == 3
    bad = httpx.post(f"{server.url}/v1/models/named:predict",
                     json={"instances": [{"b64": encoded[0]}], "top_k": 0}, timeout=30)  # fmt: skip
    assert bad.status_code == 400, bad.text
    assert "top_k" in bad.text
    oip = httpx.post(
        f"{server.url}/v2/models/named/infer",
        json={
            "inputs": [{"name": "image", "datatype": "BYTES", "shape": [2], "data": encoded}],
            "outputs": [{"name": "probabilities", "parameters": {"classification": 2}}],
        },
        timeout=30,
    )
    assert oip.status_code == 200, oip.text
    top = oip.json()["outputs"][0]["data"]
    assert top[0].endswith(":1:seven"), top
    assert top[2].endswith(":2:zero"), top


def test_grpc_takes_images_and_answers_class_names(
    server: Any, vision: tuple[Yard, Optimizer]
) -> None:
    """NVIDIA's ``tritonclient`` over gRPC: a BYTES tensor of base64 PNGs, the
    classification extension answering ``value:index:label``; a GIF refused naming it."""
    grpcclient = pytest.importorskip("tritonclient.grpc")
    yard, _ = vision
    own = Path(yard.settings.home) / "own"
    files = [base64.b64encode((own / name / "001.png").read_bytes()) for name in ("one", "zero")]
    tensor = grpcclient.InferInput("image", [2], "BYTES")
    tensor.set_data_from_numpy(np.array(files, dtype=object))
    client = grpcclient.InferenceServerClient(server.grpc_target)
    try:
        result = client.infer(
            "named", [tensor], outputs=[grpcclient.InferRequestedOutput("probabilities",
                                                                        class_count=1)]
        )  # fmt: skip
        bad = grpcclient.InferInput("image", [1], "BYTES")
        bad.set_data_from_numpy(np.array([base64.b64encode(b"GIF89a" + bytes(20))], dtype=object))
        with pytest.raises(grpcclient.InferenceServerException) as refused:
            client.infer("named", [bad])
    finally:
        client.close()
    answers = result.as_numpy("probabilities").reshape(-1)
    assert [a.decode().split(":")[2] for a in answers] == ["one", "zero"]
    assert "PNG or JPEG" in refused.value.message()


def test_triton_clients_send_the_image_files_themselves(
    server: Any, vision: tuple[Yard, Optimizer]
) -> None:
    """Triton's image clients put the encoded file in a BYTES tensor as is: tritonclient's
    HTTP client in binary tensor data (its default), its gRPC client in raw contents.
    Bytes that are neither text nor PNG/JPEG stay a 400 naming the element."""
    httpclient = pytest.importorskip("tritonclient.http")
    grpcclient = pytest.importorskip("tritonclient.grpc")
    yard, _ = vision
    own = Path(yard.settings.home) / "own"
    files = np.array([(own / name / "001.png").read_bytes() for name in ("one", "zero")],
                     dtype=object)  # fmt: skip
    http = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    grpc = grpcclient.InferenceServerClient(server.grpc_target)
    try:
        answers = []
        for module, client in ((httpclient, http), (grpcclient, grpc)):
            tensor = module.InferInput("image", [2], "BYTES")
            tensor.set_data_from_numpy(files)
            wanted = module.InferRequestedOutput("probabilities", class_count=1)
            result = client.infer("named", [tensor], outputs=[wanted])
            answers.append(
                [a.decode().split(":")[2] for a in result.as_numpy("probabilities").reshape(-1)]
            )
        junk = httpclient.InferInput("image", [1], "BYTES")
        junk.set_data_from_numpy(np.array([b"\xfe\xff" + bytes(30)], dtype=object))
        with pytest.raises(httpclient.InferenceServerException) as refused:
            http.infer("named", [junk])
    finally:
        http.close()
        grpc.close()
    assert answers == [["one", "zero"], ["one", "zero"]]
    assert "BYTES element 0 is not UTF-8 text" in refused.value.message()


def png_b64(pixels: np.ndarray) -> str:
    return base64.b64encode(encode_png(pixels)).decode()


def test_the_server_answers_images_as_the_model_does(
    vision: tuple[Yard, Optimizer], server: Any
) -> None:
    yard, optimizer = vision
    data = optimizer.held_out(CONFIG, CONFIG.seed)
    images = data.pixels[:3].reshape(3, 16, 16).astype(np.uint8)
    expected = onnx_probabilities(
        onnx_session(yard.registry.artifact_bytes(yard.registry.get_version("digits", 1))),
        data.pixels[:3],
    )
    records = httpx.post(
        f"{server.url}/v1/models/digits:predict",
        json={"instances": [{"b64": png_b64(image)} for image in images]},
        timeout=30,
    )
    assert records.status_code == 200, records.text
    labels = [p["label"] for p in records.json()["predictions"]]
    assert labels == [str(i) for i in expected.argmax(1)]  # the version's labels
    oip = httpx.post(
        f"{server.url}/v2/models/digits/infer",
        json={
            "inputs": [
                {
                    "name": "image",
                    "datatype": "BYTES",
                    "shape": [3],
                    "data": [png_b64(image) for image in images],
                }
            ],
            "outputs": [{"name": "probabilities", "parameters": {"classification": 2}}],
        },  # fmt: skip
        timeout=30,
    )
    assert oip.status_code == 200, oip.text
    top = oip.json()["outputs"][0]["data"]
    assert [int(top[2 * i].split(":")[1]) for i in range(3)] == expected.argmax(1).tolist()
    assert all(entry.split(":")[1] == entry.split(":")[2] for entry in top)  # "p:3:3"


@pytest.mark.parametrize(
    ("body", "status", "match"),
    [
        ({"instances": [{"b64": "not base64!"}]}, 422, "not valid base64"),
        ({"instances": [{"b64": base64.b64encode(b"GIF89a" + bytes(30)).decode()}]}, 422,
         "PNG or JPEG"),
        ({"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, 2, 2, 3],
                      "data": [0] * 12}]}, 422, "3 channel"),
        ({"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 2, 2],
                      "data": [0, 1, 2, 700]}]}, 422, "0, 255"),
    ],
)  # fmt: skip
def test_bad_images_are_4xx_naming_the_problem(
    server: Any, body: dict[str, Any], status: int, match: str
) -> None:
    path = "/v1/models/digits:predict" if "instances" in body else "/v2/models/digits/infer"
    response = httpx.post(f"{server.url}{path}", json=body, timeout=30)
    assert 400 <= response.status_code < 500, response.text
    assert match in response.text


def test_a_decompression_bomb_is_refused_before_decoding(server: Any) -> None:
    png = bytearray(encode_png(np.zeros((1, 1), dtype=np.uint8)))
    png[16:24] = struct.pack(">II", 60_000, 60_000)
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    response = httpx.post(
        f"{server.url}/v1/models/digits:predict",
        json={"instances": [{"b64": base64.b64encode(bytes(png)).decode()}]},
        timeout=30,
    )
    assert response.status_code == 413, response.text
    assert "pixels" in response.text


@pytest.mark.slow
def test_the_edge_bundle_runs_in_a_clean_venv_like_the_server(
    vision: tuple[Yard, Optimizer], server: Any, tmp_path: Path
) -> None:
    yard, optimizer = vision
    folder = export_edge(yard.registry, "digits/1", tmp_path / "out")
    assert {"model.onnx", "runner.py", "preprocess.py", "labels.json", "manifest.json"} <= {
        p.name for p in folder.iterdir()
    }
    # the device's environment: nothing that would let it find modelyard
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("MODEL")}
    venv = tmp_path / "device"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "onnxruntime", "numpy", "pillow"],
        check=True,
        capture_output=True,
        timeout=240,
        env=env,
    )
    absent = subprocess.run(
        [str(python), "-c", "import modelyard"], capture_output=True, env=env, cwd=tmp_path
    )
    assert absent.returncode != 0  # the device has no modelyard
    data = optimizer.held_out(CONFIG, CONFIG.seed)
    paths = []
    for i, pixels in enumerate(data.pixels[:5].reshape(5, 16, 16).astype(np.uint8)):
        paths.append(tmp_path / f"digit{i}.png")
        paths[-1].write_bytes(encode_png(pixels))
    run = subprocess.run(
        [str(python), str(folder / "runner.py"), *map(str, paths), "--top", "2"],
        capture_output=True, text=True, timeout=60, check=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert all(line["label"] == line["top"][0]["label"] for line in lines)
    edge = [line["top"] for line in lines]
    served = httpx.post(
        f"{server.url}/v1/models/digits:predict",
        json={"instances": [{"b64": base64.b64encode(p.read_bytes()).decode()} for p in paths]},
        timeout=30,
    ).json()["predictions"]
    assert [answer[0]["label"] for answer in edge] == [p["label"] for p in served]
    for answer, prediction in zip(edge, served, strict=True):
        for mine, theirs in zip(answer, prediction["top"][:2], strict=True):
            assert mine["label"] == theirs["label"]
            assert abs(mine["probability"] - theirs["probability"]) < 1e-5


def test_the_canary_guard_catches_a_quantization_that_hurts_one_class(
    vision: tuple[Yard, Optimizer], quantized: Any
) -> None:
    """The rollout's decisions check, fed as the runner feeds it (the champion re-run on
    the canary's inputs): the gated int8 version passes, one that lost digit 3 is rolled
    back."""
    yard, optimizer = vision
    data = optimizer.held_out(CONFIG, CONFIG.seed)
    traffic_pixels = np.concatenate([data.train_pixels, data.pixels])  # all 1,797 digits
    champion = yard.registry.get_version("digits", 1)

    def decide(model: bytes) -> np.ndarray:
        return onnx_probabilities(onnx_session(model), traffic_pixels).argmax(1)

    champion_decisions = decide(yard.registry.artifact_bytes(champion))
    net = from_npz(CONFIG, yard.artifacts.get_bytes(champion.lineage["vision"]["weights"]))
    with torch.no_grad():
        net.fc2.bias[3] -= 30.0  # every 3 becomes something else: 10% of digits
    arms = {
        "int8": yard.registry.artifact_bytes(quantized.registered),
        "hurts digit 3": export_onnx(net),
    }
    outcomes = {}
    for name, model in arms.items():
        changed = int((decide(model) != champion_decisions).sum())
        n = len(champion_decisions)
        traffic = ArmTraffic(n, 0, decisions_compared=n, decisions_changed=changed)
        outcomes[name] = check_decisions(RolloutPolicy(), traffic, traffic).outcome
    assert outcomes["int8"] == Outcome.PASSED
    assert outcomes["hurts digit 3"] in (Outcome.FAILED, Outcome.BREACHED)


@pytest.mark.slow
def test_a_live_canary_that_lost_one_class_is_rolled_back(
    vision: tuple[Yard, Optimizer], quantized: Any, launch_server: Any, wait_until: Any
) -> None:
    """On the real server under load: the rollout's decisions check (the champion re-run
    on the canary's logged images) stops an int8 build that lost digit 3."""
    yard, optimizer = vision
    data = optimizer.held_out(CONFIG, CONFIG.seed)
    champion = yard.registry.get_version("digits", 1)
    net = from_npz(CONFIG, yard.artifacts.get_bytes(champion.lineage["vision"]["weights"]))
    with torch.no_grad():
        net.fc2.bias[3] -= 30.0
    broken = yard.registry.register(
        "digits", onnx.load_from_string(export_onnx(net)), data.train_pixels[:256],
        feature_names=[f"p{i}" for i in range(data.pixels.shape[1])], image=CONFIG.spec,
        parent_version=1,
    )  # fmt: skip
    store = DeploymentStore(SqlDeploymentRepository(yard.db), yard.registry)
    store.create("digit-reader", "digits", 1)
    server = launch_server(
        Path(yard.settings.home), ["digits/1"], settings={"poll_interval_s": "0.25"}
    )
    images = np.concatenate([data.train_pixels, data.pixels]).reshape(-1, 16, 16)
    variants = tuple(
        ("/v1/models/digit-reader:predict",
         json_bytes({"instances": [{"b64": png_b64(image.astype(np.uint8))}]}))
        for image in images
    )  # fmt: skip
    plan = LoadPlan(server.url, "", b"", connections=8, duration_s=4.0, variants=variants,
                    headers={"content-type": "application/json"})  # fmt: skip
    results: list[LoadResult] = []
    stop = threading.Event()

    def drive() -> None:
        while not stop.is_set():
            results.append(run_load(plan))

    load = threading.Thread(target=drive, daemon=True)
    load.start()
    policy = RolloutPolicy(step_weights=(50, 100), interval_s=2.0, min_requests=100)
    RolloutController(store).start("digit-reader", broken.version, policy, actor="test")

    def ended() -> bool:
        record = store.get("digit-reader").rollout
        return record is not None and not record.state.active

    try:
        assert wait_until(ended, 90), "the rollout did not end in 90 s"
    finally:
        stop.set()
        load.join(30)
    final = store.get("digit-reader")
    events = store.events("digit-reader", "rollout.")
    assert final.rollout is not None
    assert final.rollout.state.phase.value == "rolled_back", [e.reason for e in events]
    assert final.config.champion == 1
    checks = [c for e in events for c in e.payload.get("checks", []) if c["name"] == "decisions"]
    assert any(c["outcome"] in ("failed", "breached") for c in checks), checks


def json_bytes(document: Any) -> bytes:
    return json.dumps(document).encode()
