"""Checking a rendered manifest against the API it is written for, not as YAML.

Kubernetes' own objects are deserialised into the official client's models
(``kubernetes.client``, generated from the API server's OpenAPI document) and
serialised back: a misspelt or unknown field is dropped on the way in and the two no
longer match, a wrong type fails to deserialise, a missing required field raises.

KServe's objects are checked against the OpenAPI v3 schemas of KServe's
CustomResourceDefinitions with ``jsonschema`` (types, required fields, enums, patterns,
bounds), plus the check ``kubectl apply --validate=strict`` makes and jsonschema does
not: no field the schema does not declare. The CRDs are KServe's code and are not
kept in this repository; ``MODELYARD_TEST_KSERVE_CRDS`` names a folder holding
``serving.kserve.io_inferenceservices.yaml`` and ``serving.kserve.io_servingruntimes.yaml``
(KServe's ``config/crd/full``). Without it the KServe-specific fields are not checked
here, and every Kubernetes type inside them (containers, volumes, security contexts)
still is, with the client's models.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from kubernetes.client import ApiClient

KUBERNETES_MODELS = {
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("v1", "Service"): "V1Service",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2HorizontalPodAutoscaler",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
}
CRD_FILES = {
    ("serving.kserve.io/v1beta1", "InferenceService"): "serving.kserve.io_inferenceservices.yaml",
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "serving.kserve.io_servingruntimes.yaml",
}


def as_kubernetes_model(document: Any, model: str) -> Any:
    """``document`` as the client's ``model`` (``V1Deployment``, ``V1Container``); an
    AssertionError names the fields the model does not know."""
    client = ApiClient()
    found = client.deserialize(json.dumps(document), model, "application/json")
    back = client.sanitize_for_serialization(found)
    assert back == document, f"{model} does not take every field: {_diff(document, back)}"
    return found


def validate_kubernetes(document: dict[str, Any]) -> Any:
    key = (document["apiVersion"], document["kind"])
    assert key in KUBERNETES_MODELS, f"no model for {key}"
    return as_kubernetes_model(document, KUBERNETES_MODELS[key])


def kserve_crds() -> Path | None:
    """The folder of KServe's CRDs, when this run was given one."""
    folder = os.environ.get("MODELYARD_TEST_KSERVE_CRDS")
    return Path(folder) if folder else None


def validate_against_crd(document: dict[str, Any], folder: Path) -> None:
    """``document`` against the served version's schema of its CRD in ``folder``."""
    schema = _schema(
        folder / CRD_FILES[(document["apiVersion"], document["kind"])],
        document["apiVersion"].split("/")[1],
    )
    jsonschema.Draft7Validator(schema).validate(document)
    unknown = unknown_fields(document, schema)
    assert not unknown, f"fields the {document['kind']} schema does not declare: {unknown}"


@functools.cache
def _schema(path: Path, version: str) -> dict[str, Any]:
    """The OpenAPI v3 schema of ``version`` in the CRD at ``path`` (read once: 2 MB of YAML)."""
    crd = yaml.load(path.read_text("utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    served = [v for v in crd["spec"]["versions"] if v["name"] == version]
    assert served, f"{path.name} serves no {version}"
    schema: dict[str, Any] = served[0]["schema"]["openAPIV3Schema"]
    return schema


def unknown_fields(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Paths of object keys that ``schema`` neither declares nor lets through."""
    if schema.get("x-kubernetes-preserve-unknown-fields") or schema.get(
        "x-kubernetes-int-or-string"
    ):
        return []
    if isinstance(value, dict):
        declared = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        found = []
        for key, item in value.items():
            if where == "$" and key in ("apiVersion", "kind", "metadata"):
                continue  # the API machinery's, checked as V1ObjectMeta
            if key in declared:
                found += unknown_fields(item, declared[key], f"{where}.{key}")
            elif isinstance(extra, dict):
                found += unknown_fields(item, extra, f"{where}.{key}")
            elif extra is not True:
                found.append(f"{where}.{key}")
        return found
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [
            p
            for i, v in enumerate(value)
            for p in unknown_fields(v, schema["items"], f"{where}[{i}]")
        ]
    return []


def _diff(sent: Any, back: Any, where: str = "$") -> list[str]:
    if isinstance(sent, dict) and isinstance(back, dict):
        return [
            problem
            for key in sent
            for problem in (
                [f"{where}.{key}"]
                if key not in back
                else _diff(sent[key], back[key], f"{where}.{key}")
            )
        ]
    if isinstance(sent, list) and isinstance(back, list) and len(sent) == len(back):
        return [
            p
            for i, (a, b) in enumerate(zip(sent, back, strict=True))
            for p in _diff(a, b, f"{where}[{i}]")
        ]
    return [] if sent == back else [f"{where}: {sent!r} came back as {back!r}"]
