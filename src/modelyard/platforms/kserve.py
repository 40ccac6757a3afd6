"""A KServe InferenceService for one deployment: KServe splits a canary's traffic, modelyard
still decides it.

Rendered: the ConfigMap of ``pod``, a ``ServingRuntime`` (``serving.kserve.io/v1alpha1``)
whose one container is the modelyard server, speaking the Open Inference Protocol
(``protocolVersions: [v2]``), and the ``InferenceService`` (``serving.kserve.io/v1beta1``)
whose predictors use it through ``model`` (``modelFormat: modelyard``,
``protocolVersion: v2``).

Each predictor pins its pods to one version of the deployment
(``MODELYARD_SERVING__PINNED_VERSION``, see ``serving.hosting.served_deployment``): KServe
sends each request to one version's pods, and those log it under the deployment with
the arm it plays, so the rollout controller judges the canary on the same inference
log, with the same policy and the same rollback rule, as on one machine. The canary's
weight is the rollout's current step; render and apply again after each step (the
rollout's events say when). Until then KServe keeps the previous weight, and a
rollback needs no apply at all: pods pinned to a version that is no longer an arm
answer with the champion.

Two ways KServe expresses a canary, after ``mode``:

* ``standard`` (KServe 0.21 and later, ``deploymentMode: Standard``, the former
  RawDeployment): ``spec.canary``, a list of named predictors each with its
  ``trafficPercent``, beside the stable ``spec.predictor``. Predictors are named after
  their version (``v4``), so a promotion renders the stable predictor as ``v4`` with no
  canary entry, which KServe promotes without restarting a pod. Canary predictors
  have fixed replicas (KServe refuses autoscaling on them).
* ``knative`` (``deploymentMode: Knative``, the former Serverless):
  ``spec.predictor.canaryTrafficPercent``, which sends that share to the latest
  revision and the rest to the previous rolled-out one. The predictor is the canary's
  while a rollout runs, the champion's otherwise; the champion's must have been applied
  (rolled out) before the rollout starts.

An A/B experiment has more arms than KServe's canary: its pods are not pinned and
modelyard splits the traffic inside them.
"""

from __future__ import annotations

from typing import Any, Literal

from modelyard.errors import ValidationError
from modelyard.platforms.pod import (
    ClusterOptions,
    config_map,
    metadata,
    percent,
    pod_security,
    rollout_annotations,
    server_container,
    volumes,
)
from modelyard.routing import Deployment

__all__ = ["KServeMode", "render_kserve"]

KServeMode = Literal["standard", "knative"]
MODES: tuple[str, ...] = ("standard", "knative")
_MODE_ANNOTATION = {"standard": "Standard", "knative": "Knative"}
MODEL_FORMAT = "modelyard"
# KServe's name for the container that serves (constants.InferenceServiceContainerName).
CONTAINER = "kserve-container"


def render_kserve(
    deployment: Deployment, options: ClusterOptions, mode: KServeMode = "standard"
) -> list[dict[str, Any]]:
    """The ConfigMap, ServingRuntime and InferenceService serving ``deployment`` on KServe."""
    if mode not in MODES:
        raise ValidationError(f"KServe mode must be one of {list(MODES)}, got {mode!r}")
    # KServe's gateway and Knative pick the host names; the token guards the calls.
    hosts = options.allowed_hosts or ("*",)
    return [
        config_map(deployment, options, hosts),
        _runtime(deployment, options),
        _inference_service(deployment, options, mode),
    ]


def _runtime_name(deployment: Deployment, options: ClusterOptions) -> str:
    return f"{options.object_name(deployment)}-modelyard"


def _runtime(deployment: Deployment, options: ClusterOptions) -> dict[str, Any]:
    name = options.object_name(deployment)
    # Knative accepts one unnamed (or http1/h2c) port; KServe routes to 8080.
    container = server_container(deployment, options, container_name=CONTAINER, port_name=None)
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": metadata(_runtime_name(deployment, options), name, options),
        "spec": {
            "supportedModelFormats": [{"name": MODEL_FORMAT, "version": "1", "autoSelect": False}],
            "protocolVersions": ["v2"],
            "containers": [container],
            # Mounted by the container; the pod's security context is the predictor's.
            "volumes": volumes(),
        },
    }


def _model(deployment: Deployment, options: ClusterOptions, version: int | None) -> dict[str, Any]:
    """A predictor's ``model``: the runtime, and the version its pods answer with."""
    found: dict[str, Any] = {
        # The runtime's container this predictor's settings merge into (a canary's
        # ``model`` must name it: its schema inlines a Container, whose name is required).
        "name": CONTAINER,
        "modelFormat": {"name": MODEL_FORMAT, "version": "1"},
        "runtime": _runtime_name(deployment, options),
        "protocolVersion": "v2",
    }
    if version is not None:
        found["env"] = [{"name": "MODELYARD_SERVING__PINNED_VERSION", "value": str(version)}]
    return found


def _pod() -> dict[str, Any]:
    """A predictor's pod settings (the runtime's container runs in it)."""
    return {"securityContext": pod_security(), "terminationGracePeriodSeconds": 30}


def _inference_service(
    deployment: Deployment, options: ClusterOptions, mode: KServeMode
) -> dict[str, Any]:
    name = options.object_name(deployment)
    config = deployment.config
    # An experiment's arms are split inside the pods: no pin.
    split = config.experiment is None
    annotations = {
        "serving.kserve.io/deploymentMode": _MODE_ANNOTATION[mode],
        **rollout_annotations(deployment),
    }
    scaling = {
        "minReplicas": options.min_replicas,
        "maxReplicas": options.max_replicas,
        "scaleMetric": "cpu",
        "scaleTarget": options.target_cpu_percent,
    }
    canary = config.canary if split else None
    spec: dict[str, Any]
    if mode == "standard":
        champion = config.champion if split else None
        predictor = {
            "name": f"v{config.champion}",
            "model": _model(deployment, options, champion),
            **_pod(),
            **scaling,
        }
        spec = {"predictor": predictor}
        if canary is not None:
            spec["canary"] = [
                {
                    "predictor": {
                        "name": f"v{canary}",
                        "model": _model(deployment, options, canary),
                        **_pod(),
                        # Fixed replicas (KServe refuses autoscaling on a canary), no more
                        # than the stable predictor's minimum.
                        "minReplicas": 1,
                    },
                    "trafficPercent": percent(config.canary_weight),
                }
            ]
    else:
        serving = canary if canary is not None else (config.champion if split else None)
        predictor = {"model": _model(deployment, options, serving), **_pod(), **scaling}
        if canary is not None:
            predictor["canaryTrafficPercent"] = percent(config.canary_weight)
        spec = {"predictor": predictor}
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": metadata(name, name, options, annotations),
        "spec": spec,
    }
