"""The ``PlatformSink`` that applies manifests through a Kubernetes API server.

Each object is sent as a server-side apply (``PATCH`` with
``application/apply-patch+yaml``, ``fieldManager=modelyard``, ``force=true``) with the
official ``kubernetes`` client: the API server creates the object if it is missing and
otherwise merges exactly the fields modelyard manages, so fields that other controllers
own (KServe's status, an operator's annotations) are left alone, and applying the same
document twice changes nothing. The ConfigMap goes through ``CoreV1Api``; the KServe
objects, which are custom resources, through ``CustomObjectsApi``.

The client's exceptions become ``PlatformError`` here, naming the object and the API
server's answer. Each request has a deadline (``timeout_s``), so a hung API server
delays the next push, never the rollout controller (it runs on another thread).

Needs the ``k8s`` extra (``pip install 'modelyard[k8s]'``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from modelyard.errors import ConfigurationError, PlatformError

try:
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError
except ImportError as missing:  # pragma: no cover - the message is the point
    raise ConfigurationError(
        "pushing to a Kubernetes API server needs its client: pip install 'modelyard[k8s]'"
    ) from missing

__all__ = ["FIELD_MANAGER", "KubernetesApiSink"]

FIELD_MANAGER = "modelyard"
APPLY = "application/apply-patch+yaml"
# The custom resources modelyard renders: (apiVersion, kind) -> plural.
_PLURALS = {
    ("serving.kserve.io/v1beta1", "InferenceService"): "inferenceservices",
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "servingruntimes",
}


class KubernetesApiSink:
    """Server-side apply of each document through ``api`` (a configured ``ApiClient``);
    objects without a namespace go to ``namespace``."""

    def __init__(
        self, api: k8s.ApiClient, *, namespace: str = "default", timeout_s: float = 10.0
    ) -> None:
        self._core = k8s.CoreV1Api(api)
        self._custom = k8s.CustomObjectsApi(api)
        self._host = str(api.configuration.host)
        self._namespace = namespace
        self._timeout_s = timeout_s

    @classmethod
    def from_kubeconfig(cls, context: str | None = None) -> KubernetesApiSink:
        """The cluster of the kubeconfig (``context``, else its current one), or the pod's
        own service account when running in a cluster."""
        try:
            if context is None:
                k8s_config.load_config()  # type: ignore[no-untyped-call]
            else:
                k8s_config.load_kube_config(context=context)  # type: ignore[no-untyped-call]
            namespace = _current_namespace(context)
        except (k8s_config.ConfigException, OSError) as error:
            raise ConfigurationError(
                f"runner.platform_sink: no Kubernetes cluster configured ({error})"
            ) from error
        return cls(k8s.ApiClient(), namespace=namespace)

    @property
    def where(self) -> str:
        return f"kubernetes {self._host}"

    def push(self, deployment: str, documents: Sequence[dict[str, Any]]) -> None:
        for document in documents:
            self._apply(document)

    def _apply(self, document: dict[str, Any]) -> None:
        kind, meta = document["kind"], document["metadata"]
        name, namespace = meta["name"], meta.get("namespace", self._namespace)
        what = f"{kind} {namespace}/{name}"
        common: dict[str, Any] = {
            "field_manager": FIELD_MANAGER,
            "force": True,
            "_content_type": APPLY,
            "_request_timeout": self._timeout_s,
        }
        try:
            if (document["apiVersion"], kind) == ("v1", "ConfigMap"):
                self._core.patch_namespaced_config_map(name, namespace, document, **common)
                return
            plural = _PLURALS.get((document["apiVersion"], kind))
            if plural is None:
                raise PlatformError(f"{what}: no API route known for {document['apiVersion']}")
            group, version = document["apiVersion"].split("/")
            self._custom.patch_namespaced_custom_object(
                group, version, namespace, plural, name, document, **common
            )
        except ApiException as error:
            detail = (error.body or error.reason or "").strip()
            raise PlatformError(
                f"the Kubernetes API at {self._host} refused {what}: {error.status} {detail}"
            ) from error
        except HTTPError as error:
            raise PlatformError(
                f"the Kubernetes API at {self._host} did not answer for {what}: {error}"
            ) from error


def _current_namespace(context: str | None) -> str:
    """The namespace of the kubeconfig's context, else ``default``."""
    try:
        contexts, active = k8s_config.list_kube_config_contexts()  # type: ignore[no-untyped-call]
        if context is not None:
            active = next(c for c in contexts if c["name"] == context)
        return str(active["context"].get("namespace") or "default")
    except (k8s_config.ConfigException, StopIteration, KeyError, TypeError, OSError):
        return "default"  # in a cluster, without a kubeconfig: set --namespace on the target
