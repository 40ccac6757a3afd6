"""``modelyard k8s render`` and ``modelyard containerize`` on a real home: a registered
model, a deployment and its canary rollout, read back as manifests and an image."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from tests.unit.platforms.api_schemas import validate_kubernetes

from modelyard.cli.main import main
from modelyard.config import Settings
from modelyard.runner.host import RunnerStores, runner_jobs
from modelyard.yard import Yard


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


@pytest.fixture
def home(
    sqlite_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    forest: RandomForestClassifier,
    classification_data: tuple[np.ndarray, np.ndarray],
    capsys: pytest.CaptureFixture[str],
) -> Settings:
    """``fraud`` versions 1 and 2, deployment ``fraud-api`` with version 2 at its first step."""
    monkeypatch.setenv("MODELYARD_HOME", str(sqlite_settings.home))
    features, labels = classification_data
    with Yard(sqlite_settings) as yard:
        yard.register_model("fraud", forest, features)
        yard.register_model(
            "fraud", LogisticRegression(max_iter=200).fit(features, labels), features
        )
    assert run_cli(["deploy", "fraud-api", "--model", "fraud", "--version", "1"], capsys)[0] == 0
    started = run_cli(
        ["rollout", "start", "fraud-api", "--canary", "2", "--steps", "5,50,100"], capsys
    )
    assert started[0] == 0
    return sqlite_settings


IMAGE = "registry.example.com/modelyard:0.1.0"


def test_render_writes_valid_kubernetes_manifests(
    home: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        ["k8s", "render", "fraud-api", "--image", IMAGE, "--namespace", "ml"], capsys
    )
    assert code == 0
    documents = list(yaml.safe_load_all(out))
    assert [d["kind"] for d in documents][:2] == ["ConfigMap", "Deployment"]
    for document in documents:
        validate_kubernetes(document)
    assert "containerize --bake" in err  # this home's artifacts are on a local disk

    code, out, _ = run_cli(
        ["k8s", "render", "fraud-api", "--image", IMAGE, "--out", str(tmp_path / "k8s"), "--json"],
        capsys,
    )
    assert code == 0
    written = [Path(p) for p in json.loads(out)["written"]]
    assert [p.name for p in written][0] == "01-configmap-fraud-api-config.yaml"
    assert all(p.exists() for p in written)


def test_render_for_kserve_follows_the_rollout_step(
    home: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["k8s", "render", "fraud-api", "--image", IMAGE, "--target", "kserve", "--json"]
    code, out, _ = run_cli([*args, "--artifacts-url", "s3://models/yard"], capsys)
    assert code == 0
    listed = json.loads(out)
    assert listed["kind"] == "List"
    service = listed["items"][-1]
    assert service["kind"] == "InferenceService"
    assert service["spec"]["canary"][0]["trafficPercent"] == 5
    assert run_cli(["rollout", "abort", "fraud-api"], capsys)[0] == 0
    code, out, _ = run_cli([*args, "--kserve-mode", "knative"], capsys)
    assert code == 0
    predictor = json.loads(out)["items"][-1]["spec"]["predictor"]
    assert "canaryTrafficPercent" not in predictor
    assert predictor["model"]["env"] == [
        {"name": "MODELYARD_SERVING__PINNED_VERSION", "value": "1"}
    ]


def test_containerize_bakes_the_versions_by_hash(
    home: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "image"
    code, out, _ = run_cli(
        ["containerize", "fraud-api", "--out", str(out_dir), "--bake", "--json"], capsys
    )
    assert code == 0
    summary = json.loads(out)
    assert summary["versions"] == ["fraud/1", "fraud/2"]
    sums = (out_dir / "artifacts" / "SHA256SUMS").read_text().splitlines()
    assert len(sums) >= 2  # each version's model file, and its profile when it has one
    for line in sums:
        digest, relative = line.split("  ")
        assert hashlib.sha256((out_dir / "artifacts" / relative).read_bytes()).hexdigest() == digest
    dockerfile = (out_dir / "Dockerfile").read_text()
    assert "USER 10001:10001" in dockerfile
    assert (out_dir / "wheels").is_dir()
    code, out, _ = run_cli(["containerize", "fraud/2", "--out", str(tmp_path / "one")], capsys)
    assert code == 0
    assert not (tmp_path / "one" / "artifacts").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["k8s", "render", "ghost", "--image", IMAGE], "no deployment named 'ghost'"),
        (
            ["k8s", "render", "fraud-api", "--image", IMAGE, "--target", "nomad"],
            "--target must be one of",
        ),
        (
            ["k8s", "render", "fraud-api", "--image", IMAGE, "--cpu", "lots"],
            "cpu must be a Kubernetes quantity",
        ),
        (
            ["containerize", "ghost", "--out", "x"],
            "no deployment 'ghost', and no registered model named 'ghost'",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    home: Settings, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(args, capsys)
    assert code == 2
    assert message in err
    assert "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1


def test_a_kserve_target_is_stored_rendered_and_pushed_by_the_runner(
    home: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy = ["deploy", "fraud-ks", "--model", "fraud", "--version", "1", "--target", "kserve"]
    code, _, err = run_cli([*deploy, "--option", "cpu=lots", "--image", IMAGE], capsys)
    assert code != 0
    assert "cpu must be a Kubernetes quantity" in err
    code, out, _ = run_cli(
        [*deploy, "--image", IMAGE, "--namespace", "ml", "--max-replicas", "4", "--json"], capsys
    )
    assert code == 0
    assert json.loads(out)["after"]["config"]["target"] == {
        "kind": "kserve",
        "min_replicas": None,
        "max_replicas": 4,
        "options": {"image": IMAGE, "namespace": "ml"},
    }
    assert (
        run_cli(["rollout", "start", "fraud-ks", "--canary", "2", "--steps", "5,100"], capsys)[0]
        == 0
    )
    code, out, _ = run_cli(["k8s", "render", "fraud-ks", "--json"], capsys)
    assert code == 0
    rendered = json.loads(out)["items"][-1]
    assert rendered["metadata"]["namespace"] == "ml"
    assert rendered["spec"]["canary"][0]["trafficPercent"] == 5

    settings = replace(home, runner=replace(home.runner, platform_sink=str(tmp_path / "gitops")))
    stores = RunnerStores(settings)
    try:
        (job,) = [j for j in runner_jobs(settings, stores) if j.name == "platform-sync"]
        job.tick(Log())
    finally:
        stores.close()
    pushed = yaml.safe_load(
        (tmp_path / "gitops" / "fraud-ks" / "03-inferenceservice-fraud-ks.yaml").read_text()
    )
    assert pushed == rendered
    assert not (tmp_path / "gitops" / "fraud-api").exists()  # builtin: not pushed
    code, out, _ = run_cli(["history", "fraud-ks", "--events", "--json"], capsys)
    assert [e["kind"] for e in json.loads(out)][-1] == "platform.pushed"
    code, out, _ = run_cli(["rollout", "status", "fraud-ks", "--json"], capsys)
    platform = json.loads(out)["platform"]
    assert platform["pushed_revision"] == platform["revision"]
    assert platform["last"]["event"] == "platform.pushed"
    assert platform["last"]["canary_weight"] == 5
    code, out, _ = run_cli(["rollout", "status", "fraud-ks"], capsys)
    assert code == 0
    assert "pushed to kserve" in out


class Log:
    def emit(self, level: str, event: str, fields: dict[str, Any], ts: float | None = None) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
