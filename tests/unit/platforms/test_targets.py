"""A deployment's stored target as the renderer's options, the decision of when to push,
and the folder a GitOps tool applies from."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from tests.unit.platforms.conftest import deployment

from modelyard.errors import PlatformError, ValidationError
from modelyard.platforms import DirectorySink, open_sink, render_target, target_options
from modelyard.platforms.sync import PushState, after_failure, after_push, push_due
from modelyard.routing import DeploymentConfig, Target

IMAGE = "registry.example.com/modelyard:1"


def test_stored_options_become_the_renderers() -> None:
    target = Target(
        "kserve", 3, 8, {"image": IMAGE, "namespace": "ml", "workers": "2", "mode": "knative"}
    )
    options, mode = target_options(target)
    assert (options.image, options.namespace, options.workers) == (IMAGE, "ml", 2)
    assert (options.min_replicas, options.max_replicas, mode) == (3, 8, "knative")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, r"a kserve target needs an image"),
        ({"image": IMAGE, "colour": "red"}, r"target option\(s\) \['colour'\] unknown"),
        ({"image": IMAGE, "workers": "two"}, r"target option workers must be an integer"),
        ({"image": IMAGE, "mode": "serverless"}, r"target option mode must be one of"),
        ({"image": IMAGE, "cpu": "lots"}, r"cpu must be a Kubernetes quantity"),
    ],
)
def test_bad_options_are_refused_naming_the_option(options: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        target_options(Target("kserve", options=options))


def test_render_target_puts_the_canary_at_the_rollouts_step() -> None:
    target = Target("kserve", options={"image": IMAGE})
    found = deployment(3, canary=2, canary_weight=25, target=target)
    *_, service = render_target(found)
    assert service["spec"]["canary"][0]["trafficPercent"] == 25
    config_map, *_ = render_target(found, artifacts_url="s3://models/yard")
    assert config_map["data"]["MODELYARD_ARTIFACTS_URL"] == "s3://models/yard"
    own = Target("kserve", options={"image": IMAGE, "artifacts_url": "s3://other"})
    config_map, *_ = render_target(deployment(target=own), artifacts_url="s3://models/yard")
    assert config_map["data"]["MODELYARD_ARTIFACTS_URL"] == "s3://other"  # the target's wins
    with pytest.raises(ValidationError, match=r"targets 'builtin': nothing to push"):
        render_target(deployment())


def test_targets_round_trip_and_the_default_is_not_stored() -> None:
    assert "target" not in DeploymentConfig("m", 1).to_dict()
    config = DeploymentConfig("m", 1, target=Target("ray", 2, 4))
    assert DeploymentConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValidationError, match=r"target.max_replicas \(1\) must be at least"):
        Target("ray", 2, 1)
    with pytest.raises(ValidationError, match=r"target 'ray' takes replicas only"):
        Target("ray", options={"image": IMAGE})
    with pytest.raises(ValidationError, match=r"target must be one of"):
        Target("k8s")


def test_a_push_is_due_on_each_new_revision_and_backs_off_after_failures() -> None:
    state = PushState()
    assert push_due(state, 1, now=0.0)
    state = after_push(1)
    assert not push_due(state, 1, now=0.0)
    assert push_due(state, 2, now=0.0)
    delays = []
    for _ in range(8):
        state = after_failure(state, now=100.0)
        delays.append(state.retry_at - 100.0)
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60]
    assert not push_due(state, 2, now=159.0)
    assert push_due(state, 2, now=160.0)


def test_the_folder_gets_one_file_per_object_replaced_atomically(tmp_path: Path) -> None:
    sink = open_sink(str(tmp_path / "gitops"))
    assert isinstance(sink, DirectorySink)
    target = Target("kserve", options={"image": IMAGE, "namespace": "ml"})
    sink.push("fraud-api", render_target(deployment(2, canary=2, canary_weight=5, target=target)))
    folder = tmp_path / "gitops" / "fraud-api"
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "01-configmap-fraud-api-config.yaml",
        "02-servingruntime-fraud-api-modelyard.yaml",
        "03-inferenceservice-fraud-api.yaml",
    ]
    service = folder / names[-1]
    runtime = folder / names[1]
    runtime_written = runtime.stat().st_mtime_ns
    os.utime(runtime, ns=(0, 0))  # an unchanged file is not rewritten: it keeps this time
    sink.push("fraud-api", render_target(deployment(3, canary=2, canary_weight=50, target=target)))
    assert yaml.safe_load(service.read_text())["spec"]["canary"][0]["trafficPercent"] == 50
    assert runtime.stat().st_mtime_ns == 0 != runtime_written
    assert sorted(p.name for p in folder.iterdir()) == names  # no temporary file left


def test_a_folder_that_cannot_be_written_is_a_platform_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    sink = DirectorySink(tmp_path / "file")
    target = Target("kserve", options={"image": IMAGE})
    with pytest.raises(PlatformError, match=r"cannot write the manifests of 'fraud-api'"):
        sink.push("fraud-api", render_target(deployment(target=target)))
