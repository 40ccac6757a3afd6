"""The KServe InferenceService: its canary at the rollout's step, each predictor's pods
pinned to one version, valid against KServe's schemas and Kubernetes' own types."""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.platforms.api_schemas import (
    as_kubernetes_model,
    kserve_crds,
    validate_against_crd,
)
from tests.unit.platforms.conftest import deployment

from modelyard.errors import ValidationError
from modelyard.platforms import ClusterOptions, render_kserve
from modelyard.routing import Experiment, ExperimentArm, FixedHorizon

OPTIONS = ClusterOptions(
    image="registry.example.com/modelyard:0.1.0",
    namespace="ml",
    artifacts_url="s3://models/yard",
)
STATES = {
    "champion only": deployment(),
    "canary at 5%": deployment(2, canary=2, canary_weight=5),
    "canary at 2.5%": deployment(2, canary=2, canary_weight=2.5),
    "canary at 100%": deployment(4, canary=2, canary_weight=100),
    "promoted": deployment(5, champion=2),
    "experiment": deployment(
        3,
        experiment=Experiment(
            (ExperimentArm("a", 1, 50), ExperimentArm("b", 2, 50)), FixedHorizon(1000)
        ),
    ),
}
MODES = ("standard", "knative")


def _pinned(model: dict[str, Any]) -> int | None:
    env = {e["name"]: e["value"] for e in model.get("env", [])}
    found = env.get("MODELYARD_SERVING__PINNED_VERSION")
    return None if found is None else int(found)


def _predictors(service: dict[str, Any]) -> list[dict[str, Any]]:
    spec = service["spec"]
    return [spec["predictor"], *(c["predictor"] for c in spec.get("canary", []))]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("state", list(STATES))
def test_kubernetes_types_inside_are_valid(mode: str, state: str) -> None:
    config_map, runtime, service = render_kserve(STATES[state], OPTIONS, mode)  # type: ignore[arg-type]
    as_kubernetes_model(config_map, "V1ConfigMap")
    for document in (runtime, service):
        as_kubernetes_model(document["metadata"], "V1ObjectMeta")
    (container,) = runtime["spec"]["containers"]
    made = as_kubernetes_model(container, "V1Container")
    assert made.name == "kserve-container"
    assert made.readiness_probe.http_get.path == "/v2/health/ready"
    assert made.liveness_probe.http_get.path == "/v2/health/live"
    for volume in runtime["spec"]["volumes"]:
        as_kubernetes_model(volume, "V1Volume")
    for predictor in _predictors(service):
        as_kubernetes_model(predictor["securityContext"], "V1PodSecurityContext")
        for variable in predictor["model"].get("env", []):
            as_kubernetes_model(variable, "V1EnvVar")


@pytest.mark.skipif(
    kserve_crds() is None,
    reason="KServe's CRDs are not kept here (they are KServe's code): set "
    "MODELYARD_TEST_KSERVE_CRDS to a copy of its config/crd/full to check against them",
)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("state", list(STATES))
def test_valid_against_kserves_crds(mode: str, state: str) -> None:
    folder = kserve_crds()
    assert folder is not None
    _, runtime, service = render_kserve(STATES[state], OPTIONS, mode)  # type: ignore[arg-type]
    validate_against_crd(runtime, folder)
    validate_against_crd(service, folder)


def test_the_crd_check_refuses_a_field_kserve_does_not_have() -> None:
    if kserve_crds() is None:
        pytest.skip("needs MODELYARD_TEST_KSERVE_CRDS (see the test above)")
    _, _, service = render_kserve(STATES["canary at 5%"], OPTIONS, "standard")
    service["spec"]["canary"][0]["trafficPercentage"] = 5
    with pytest.raises(AssertionError, match=r"\$\.spec\.canary\[0\]\.trafficPercentage"):
        validate_against_crd(service, kserve_crds())  # type: ignore[arg-type]


def test_the_runtime_speaks_the_open_inference_protocol() -> None:
    _, runtime, service = render_kserve(STATES["champion only"], OPTIONS)
    assert runtime["spec"]["protocolVersions"] == ["v2"]
    model = service["spec"]["predictor"]["model"]
    assert model["protocolVersion"] == "v2"
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["modelFormat"]["name"] == runtime["spec"]["supportedModelFormats"][0]["name"]
    assert service["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"


def test_standard_mode_puts_the_canary_in_spec_canary_at_the_rollouts_step() -> None:
    for state, weight in (("canary at 5%", 5), ("canary at 2.5%", 3), ("canary at 100%", 100)):
        _, _, service = render_kserve(STATES[state], OPTIONS, "standard")
        stable, canary = _predictors(service)
        assert (stable["name"], _pinned(stable["model"])) == ("v1", 1)
        assert (canary["name"], _pinned(canary["model"])) == ("v2", 2)
        assert service["spec"]["canary"][0]["trafficPercent"] == weight
        # KServe refuses autoscaling on a canary predictor.
        assert not {"maxReplicas", "scaleMetric", "scaleTarget"} & set(canary)
        assert canary["minReplicas"] <= stable["minReplicas"]
    _, _, service = render_kserve(STATES["champion only"], OPTIONS, "standard")
    assert "canary" not in service["spec"]


def test_a_standard_promotion_names_the_stable_predictor_after_the_canary() -> None:
    # KServe promotes without a restart when the stable predictor takes the canary's name.
    _, _, during = render_kserve(STATES["canary at 100%"], OPTIONS, "standard")
    _, _, after = render_kserve(STATES["promoted"], OPTIONS, "standard")
    canary = during["spec"]["canary"][0]["predictor"]
    assert after["spec"]["predictor"]["name"] == canary["name"]
    assert after["spec"]["predictor"]["model"] == canary["model"]
    assert "canary" not in after["spec"]


def test_knative_mode_sends_the_step_to_the_latest_revision() -> None:
    _, _, during = render_kserve(STATES["canary at 5%"], OPTIONS, "knative")
    predictor = during["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 5
    assert _pinned(predictor["model"]) == 2
    assert during["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
    _, _, before = render_kserve(STATES["champion only"], OPTIONS, "knative")
    assert "canaryTrafficPercent" not in before["spec"]["predictor"]
    assert _pinned(before["spec"]["predictor"]["model"]) == 1
    # Promoted: the same revision template as the canary's, now with all the traffic.
    _, _, after = render_kserve(STATES["promoted"], OPTIONS, "knative")
    assert "canaryTrafficPercent" not in after["spec"]["predictor"]
    assert after["spec"]["predictor"]["model"] == predictor["model"]


@pytest.mark.parametrize("mode", MODES)
def test_an_experiment_is_split_inside_the_pods(mode: str) -> None:
    _, _, service = render_kserve(STATES["experiment"], OPTIONS, mode)  # type: ignore[arg-type]
    assert [_pinned(p["model"]) for p in _predictors(service)] == [None]
    assert "canaryTrafficPercent" not in service["spec"]["predictor"]


def test_every_pod_follows_the_deployment_and_reads_its_secrets_by_reference() -> None:
    config_map, runtime, _ = render_kserve(STATES["canary at 5%"], OPTIONS)
    assert config_map["data"]["MODELYARD_SERVING__DEPLOYMENTS"] == "fraud-api"
    assert config_map["data"]["MODELYARD_ARTIFACTS_URL"] == "s3://models/yard"
    env = runtime["spec"]["containers"][0]["env"]
    assert all("value" not in e for e in env if "DATABASE" in e["name"] or "TOKEN" in e["name"])


def test_an_unknown_mode_is_named() -> None:
    with pytest.raises(
        ValidationError,
        match=r"KServe mode must be one of \['standard', 'knative'\], got 'serverless'",
    ):
        render_kserve(STATES["champion only"], OPTIONS, "serverless")  # type: ignore[arg-type]
