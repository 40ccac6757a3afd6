"""Plain Kubernetes manifests: valid objects of the API, pods probed on the health routes,
secrets referenced and never written, nothing that moves with a rollout step."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError as PydanticValidationError
from tests.unit.platforms.api_schemas import as_kubernetes_model, validate_kubernetes
from tests.unit.platforms.conftest import deployment

from modelyard.errors import ValidationError
from modelyard.platforms import ClusterOptions, kubernetes_name, render_kubernetes, to_yaml

OPTIONS = ClusterOptions(image="registry.example.com/modelyard:0.1.0", namespace="ml")


def test_every_object_is_one_the_kubernetes_api_takes() -> None:
    rendered = render_kubernetes(deployment(canary=2, canary_weight=25), OPTIONS)
    kinds = [d["kind"] for d in rendered]
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    ]
    for document in rendered:
        made = validate_kubernetes(document)
        assert made.metadata.namespace == "ml"
        assert made.metadata.name.startswith("fraud-api")


def test_the_pods_are_probed_on_the_health_routes_and_run_as_nobody_in_particular() -> None:
    made = validate_kubernetes(render_kubernetes(deployment(), OPTIONS)[1])
    pod = made.spec.template.spec
    (container,) = pod.containers
    assert container.readiness_probe.http_get.path == "/v2/health/ready"
    assert container.liveness_probe.http_get.path == "/v2/health/live"
    assert container.startup_probe.http_get.path == "/v2/health/live"
    assert container.readiness_probe.http_get.port == container.ports[0].container_port == 8080
    assert pod.security_context.run_as_non_root is True
    assert container.security_context.read_only_root_filesystem is True
    assert container.security_context.allow_privilege_escalation is False
    assert container.security_context.capabilities.drop == ["ALL"]
    mounts = {m.mount_path for m in container.volume_mounts}
    assert mounts == {"/var/lib/modelyard", "/tmp"}
    assert {v.name for v in pod.volumes if v.empty_dir is not None} == {"home", "tmp"}
    assert made.spec.strategy.rolling_update.max_unavailable == 0


def test_secrets_are_referenced_by_name_and_never_written() -> None:
    config_map, made, *_ = render_kubernetes(deployment(), OPTIONS)
    env = {e["name"]: e for e in made["spec"]["template"]["spec"]["containers"][0]["env"]}
    for name, key in (
        ("MODELYARD_DATABASE_URL", "database-url"),
        ("MODELYARD_SERVING__TOKEN", "serving-token"),
    ):
        assert "value" not in env[name]
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "fraud-api-secrets", "key": key}
    assert not {"MODELYARD_DATABASE_URL", "MODELYARD_SERVING__TOKEN"} & set(config_map["data"])
    assert config_map["data"]["MODELYARD_SERVING__DEPLOYMENTS"] == "fraud-api"
    named = ClusterOptions(image="modelyard:1", secret="prod-db")
    made = render_kubernetes(deployment(), named)[1]
    refs = [
        e["valueFrom"]["secretKeyRef"]["name"]
        for e in made["spec"]["template"]["spec"]["containers"][0]["env"]
    ]
    assert refs == ["prod-db", "prod-db"]


def test_the_service_autoscaler_and_budget_reach_the_deployments_pods() -> None:
    _, made, service, autoscaler, budget = render_kubernetes(deployment(), OPTIONS)
    pod_labels = made["spec"]["template"]["metadata"]["labels"]
    for selector in (
        made["spec"]["selector"]["matchLabels"],
        service["spec"]["selector"],
        budget["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= pod_labels.items()
    port_names = {p["name"] for p in made["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] in port_names
    assert autoscaler["spec"]["scaleTargetRef"]["name"] == made["metadata"]["name"]
    assert (autoscaler["spec"]["minReplicas"], autoscaler["spec"]["maxReplicas"]) == (2, 10)
    hosts = made and render_kubernetes(deployment(), OPTIONS)[0]["data"]
    assert "fraud-api.ml.svc.cluster.local" in hosts["MODELYARD_SERVING__ALLOWED_HOSTS"]


def test_a_rollout_step_changes_no_pod_template() -> None:
    # modelyard splits the traffic itself: each step is the server's, not a new manifest.
    early = render_kubernetes(deployment(2, canary=2, canary_weight=5), OPTIONS)
    later = render_kubernetes(deployment(3, canary=2, canary_weight=50), OPTIONS)
    assert early[1]["spec"] == later[1]["spec"]
    assert early[0] == later[0]


def test_the_artifact_store_is_configured_only_when_given() -> None:
    assert "MODELYARD_ARTIFACTS_URL" not in render_kubernetes(deployment(), OPTIONS)[0]["data"]
    remote = ClusterOptions(image="modelyard:1", artifacts_url="s3://models/yard")
    data = render_kubernetes(deployment(), remote)[0]["data"]
    assert data["MODELYARD_ARTIFACTS_URL"] == "s3://models/yard"


def test_yaml_round_trips_to_the_same_documents() -> None:
    import yaml

    rendered = render_kubernetes(deployment(canary=2, canary_weight=25), OPTIONS)
    text = to_yaml(rendered)
    assert list(yaml.safe_load_all(text)) == json.loads(json.dumps(rendered))
    assert "&id" not in text


def test_kubernetes_names_come_from_deployment_names() -> None:
    assert kubernetes_name("Fraud_API") == "fraud-api"
    assert kubernetes_name("fraud.v2") == "fraud-v2"
    with pytest.raises(ValidationError, match="pass --name"):
        kubernetes_name("2024-model")
    with pytest.raises(ValidationError, match="pass --name"):
        kubernetes_name("x" * 41)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"image": ""}, "image must name a container image"),
        ({"cpu": "lots"}, "cpu must be a Kubernetes quantity"),
        ({"memory": "1 GB"}, "memory must be a Kubernetes quantity"),
        ({"min_replicas": 0}, "min_replicas must be an integer >= 1"),
        ({"min_replicas": 3, "max_replicas": 2}, r"max_replicas must be .* >= min_replicas \(3\)"),
        ({"namespace": "ML"}, "namespace 'ML' is not a Kubernetes name"),
        ({"target_cpu_percent": 0}, r"target_cpu_percent must be an integer in \[1, 100\]"),
    ],
)
def test_bad_options_name_the_field(options: dict[str, object], message: str) -> None:
    options.setdefault("image", "modelyard:1")
    with pytest.raises(ValidationError, match=message):
        ClusterOptions(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mutate", "caught"),
    [
        (lambda c: c.__setitem__("readinesProbe", c.pop("readinessProbe")), r"\$\.readinesProbe"),
        (lambda c: c.pop("name"), "name"),
        (lambda c: c["ports"][0].__setitem__("containerPort", "eighty"), "containerPort"),
        (lambda c: c["securityContext"].__setitem__("runAsNonRoot", "yes"), "runAsNonRoot"),
    ],
    ids=["misspelt field", "missing required field", "wrong type", "wrong nested type"],
)
def test_the_check_refuses_what_the_api_server_would(mutate: Any, caught: str) -> None:
    # The validation above is worth something only if it fails on a broken manifest.
    container = render_kubernetes(deployment(), OPTIONS)[1]["spec"]["template"]["spec"][
        "containers"
    ][0]
    mutate(container)
    with pytest.raises((AssertionError, PydanticValidationError), match=caught):
        as_kubernetes_model(container, "V1Container")
