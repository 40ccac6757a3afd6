"""What a modelyard server pod runs on Kubernetes: shared by the plain and the KServe manifests.

One container of the modelyard image (its entrypoint is ``modelyard``, see
``dockerfile``) running ``serve`` for one deployment, with:

* the settings that are not secret in a ConfigMap, read with ``envFrom``: the home on
  an emptyDir, the address, workers, the artifact store, the deployment it follows;
* the database URL and the bearer token from a Secret, by name and key
  (``secretKeyRef``): a manifest never holds their values;
* readiness and liveness probes on ``/v2/health/ready`` and ``/v2/health/live`` (the
  server answers them whatever the Host header, as the kubelet sends the pod's IP);
* a non-root user, a read-only root filesystem, no capabilities; the home (the
  write-ahead log of the inference log) and ``/tmp`` on emptyDir volumes.

Everything here is pure: options and a deployment in, plain dicts in the shape of
the Kubernetes API's JSON out.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from modelyard.errors import ValidationError
from modelyard.routing import Deployment

__all__ = [
    "DATABASE_KEY",
    "HOME",
    "PORT",
    "TOKEN_KEY",
    "USER_ID",
    "ClusterOptions",
    "config_map",
    "kubernetes_name",
    "labels",
    "pod_security",
    "rollout_annotations",
    "server_container",
    "volumes",
]

HOME = "/var/lib/modelyard"
PORT = 8080  # KServe's default for a serving runtime's container; any port serves plain pods
USER_ID = 10001  # the image's non-root user (dockerfile.py creates it with this id)
DATABASE_KEY = "database-url"
TOKEN_KEY = "serving-token"
# On SIGTERM a worker reports not-ready this long before it drains: time for the
# endpoints controller to take the pod out of its Service.
DRAIN_DELAY_S = 5

# A DNS-1035 label (KServe's names must start with a letter), short enough that the
# longest name derived from it ("<name>-predictor-00001-deployment") stays within 63.
_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")


@dataclass(frozen=True)
class ClusterOptions:
    """How the pods of one deployment are built and sized.

    ``image``: the modelyard image (``modelyard containerize`` writes its Dockerfile).
    ``name``: the Kubernetes name of every object (default: from the deployment's name).
    ``secret``: the Secret holding ``database-url`` and ``serving-token`` (default
    ``<name>-secrets``); it is referenced, never written. ``artifacts_url``: the
    artifact store the pods read versions from (None: the image's own, baked in).
    ``workers`` per pod, ``cpu`` and ``memory`` per pod (requests; memory is also the
    limit), ``min_replicas``/``max_replicas`` and ``target_cpu_percent`` for the
    autoscaler. ``allowed_hosts``: the Host header values answered (None: the
    Service's own names on plain Kubernetes, any on KServe, whose gateway picks them).
    """

    image: str
    namespace: str | None = None
    name: str | None = None
    secret: str | None = None
    artifacts_url: str | None = None
    workers: int = 1
    cpu: str = "1"
    memory: str = "1Gi"
    min_replicas: int = 2
    max_replicas: int = 10
    target_cpu_percent: int = 70
    allowed_hosts: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if (
            not isinstance(self.image, str)
            or not self.image
            or any(c.isspace() for c in self.image)
        ):
            raise ValidationError(f"image must name a container image, got {self.image!r}")
        for field_name in ("namespace", "name", "secret"):
            value = getattr(self, field_name)
            if value is not None and not _NAME.match(value):
                raise ValidationError(
                    f"{field_name} {value!r} is not a Kubernetes name: lowercase letters, digits "
                    "and '-', starting with a letter, at most 40 characters"
                )
        for field_name in ("cpu", "memory"):
            value = getattr(self, field_name)
            if not isinstance(value, str) or not _QUANTITY.match(value):
                raise ValidationError(
                    f"{field_name} must be a Kubernetes quantity such as '500m', '2' or '1Gi', "
                    f"got {value!r}"
                )
        for field_name in ("workers", "min_replicas"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationError(f"{field_name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.max_replicas, int) or self.max_replicas < self.min_replicas:
            raise ValidationError(
                f"max_replicas must be an integer >= min_replicas ({self.min_replicas}), "
                f"got {self.max_replicas!r}"
            )
        if not isinstance(self.target_cpu_percent, int) or not 1 <= self.target_cpu_percent <= 100:
            raise ValidationError(
                "target_cpu_percent must be an integer in [1, 100], got "
                f"{self.target_cpu_percent!r}"
            )

    def object_name(self, deployment: Deployment) -> str:
        """The name every object of this deployment gets."""
        return self.name or kubernetes_name(deployment.name)

    def secret_name(self, deployment: Deployment) -> str:
        return self.secret or f"{self.object_name(deployment)}-secrets"


def kubernetes_name(deployment: str) -> str:
    """A Kubernetes name for a modelyard deployment name (``Fraud_API`` -> ``fraud-api``), or
    ValidationError when none can be made: then ``--name`` gives one."""
    made = re.sub(r"[^a-z0-9-]+", "-", deployment.lower()).strip("-")
    if not _NAME.match(made):
        raise ValidationError(
            f"deployment {deployment!r} gives no Kubernetes name ({made!r}); pass --name: "
            "lowercase letters, digits and '-', starting with a letter, at most 40 characters"
        )
    return made


def labels(name: str) -> dict[str, str]:
    """The recommended labels; the first two select the pods."""
    return {
        "app.kubernetes.io/name": "modelyard",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": "server",
        "app.kubernetes.io/managed-by": "modelyard",
    }


def selector(name: str) -> dict[str, str]:
    return {k: v for k, v in labels(name).items() if k.endswith(("/name", "/instance"))}


def rollout_annotations(deployment: Deployment, *, weight: bool = True) -> dict[str, str]:
    """What the manifests were rendered from: the deployment, its revision, its arms and
    (``weight``) the canary's share of traffic."""
    config = deployment.config
    found = {
        "modelyard.io/deployment": deployment.name,
        "modelyard.io/revision": str(deployment.revision),
        "modelyard.io/champion": f"{config.model}/{config.champion}",
    }
    if config.canary is not None:
        found["modelyard.io/canary"] = f"{config.model}/{config.canary}"
        if weight:
            found["modelyard.io/canary-weight"] = f"{config.canary_weight:g}"
    return found


def config_map(
    deployment: Deployment, options: ClusterOptions, allowed_hosts: tuple[str, ...]
) -> dict[str, Any]:
    """The ConfigMap of the settings that are not secret (``MODELYARD_*``, see
    docs/configuration.md); the pods read it whole."""
    name = options.object_name(deployment)
    data = {
        "MODELYARD_HOME": HOME,
        "MODELYARD_SERVING__HOST": "0.0.0.0",
        "MODELYARD_SERVING__PORT": str(PORT),
        "MODELYARD_SERVING__WORKERS": str(options.workers),
        "MODELYARD_SERVING__DEPLOYMENTS": deployment.name,
        "MODELYARD_SERVING__ALLOWED_HOSTS": ",".join(allowed_hosts),
        "MODELYARD_SERVING__DRAIN_DELAY_S": str(DRAIN_DELAY_S),
    }
    if options.artifacts_url is not None:
        data["MODELYARD_ARTIFACTS_URL"] = options.artifacts_url
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(f"{name}-config", name, options),
        "data": data,
    }


def metadata(
    object_name: str,
    name: str,
    options: ClusterOptions,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    found: dict[str, Any] = {"name": object_name, "labels": labels(name)}
    if options.namespace is not None:
        found["namespace"] = options.namespace
    if annotations:
        found["annotations"] = annotations
    return found


def server_container(
    deployment: Deployment,
    options: ClusterOptions,
    *,
    container_name: str = "modelyard",
    port_name: str | None = "http",
    extra_env: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    """The container that runs ``modelyard serve`` for the deployment."""
    name = options.object_name(deployment)
    secret = options.secret_name(deployment)
    port: dict[str, Any] = {"containerPort": PORT, "protocol": "TCP"}
    if port_name is not None:
        port = {"name": port_name, **port}
    env = [
        _from_secret("MODELYARD_DATABASE_URL", secret, DATABASE_KEY),
        _from_secret("MODELYARD_SERVING__TOKEN", secret, TOKEN_KEY),
        *({"name": key, "value": value} for key, value in extra_env),
    ]
    return {
        "name": container_name,
        "image": options.image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["serve"],
        "ports": [port],
        "envFrom": [{"configMapRef": {"name": f"{name}-config"}}],
        "env": env,
        # Loading and warming a version can take a while: the startup probe gives it
        # three minutes before liveness counts.
        "startupProbe": _probe("/v2/health/live", period_s=2, failures=90),
        "livenessProbe": _probe("/v2/health/live", period_s=10, failures=3),
        "readinessProbe": _probe("/v2/health/ready", period_s=5, failures=2),
        "resources": {
            "requests": {"cpu": options.cpu, "memory": options.memory},
            "limits": {"memory": options.memory},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": USER_ID,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "home", "mountPath": HOME},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def pod_security() -> dict[str, Any]:
    """The pod's security context: the image's non-root user, the runtime's seccomp profile."""
    return {
        "runAsNonRoot": True,
        "runAsUser": USER_ID,
        "runAsGroup": USER_ID,
        "fsGroup": USER_ID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def volumes() -> list[dict[str, Any]]:
    """The home (write-ahead log, logs) and /tmp: emptyDir, as the root filesystem is
    read-only. The write-ahead log survives a container restart, not the pod's removal:
    a pod taken away drains first (``drain_delay_s``) and its ingester empties the log."""
    return [{"name": "home", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]


def percent(weight: float) -> int:
    """A modelyard traffic weight (a float percentage) as the whole percent Kubernetes
    platforms take, rounded half up: 2.5% is 3%."""
    return int(math.floor(weight + 0.5))


def _from_secret(env_name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": env_name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _probe(path: str, *, period_s: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": PORT},
        "periodSeconds": period_s,
        "failureThreshold": failures,
        "timeoutSeconds": 2,
    }
