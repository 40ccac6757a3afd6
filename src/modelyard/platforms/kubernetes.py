"""Plain Kubernetes manifests for one deployment: modelyard splits the traffic itself.

Every pod runs ``modelyard serve`` for the deployment against the shared database and
artifact store, so every pod routes with the same weights and the same sticky
assignment (a hash of the routing key), and the canary's steps, verdicts and
rollbacks are the server's rollout controller's, as on one machine: a rollout step
changes nothing here, and these manifests need applying again only when the options
change. Rendered, in the order ``kubectl apply`` wants them:

* a ConfigMap of the settings that are not secret (``pod.config_map``); the Secret
  with ``database-url`` and ``serving-token`` is referenced by name, never written;
* a Deployment (rolling update without losing capacity, the pods of ``pod``);
* a Service on port 80 to the pods' 8080;
* a HorizontalPodAutoscaler (``autoscaling/v2``) on CPU utilization;
* a PodDisruptionBudget keeping all pods but one through a node drain.
"""

from __future__ import annotations

from typing import Any

from modelyard.platforms.pod import (
    ClusterOptions,
    config_map,
    labels,
    metadata,
    pod_security,
    rollout_annotations,
    selector,
    server_container,
    volumes,
)
from modelyard.routing import Deployment

__all__ = ["render_kubernetes", "service_hosts"]


def render_kubernetes(deployment: Deployment, options: ClusterOptions) -> list[dict[str, Any]]:
    """The manifests that serve ``deployment`` on plain Kubernetes, in apply order."""
    name = options.object_name(deployment)
    hosts = options.allowed_hosts or service_hosts(name, options.namespace)
    return [
        config_map(deployment, options, hosts),
        _deployment(deployment, options),
        _service(name, options),
        _autoscaler(name, options),
        _disruption_budget(name, options),
    ]


def service_hosts(name: str, namespace: str | None) -> tuple[str, ...]:
    """The names a client in the cluster reaches the Service by (the Host header check)."""
    found = [name]
    if namespace is not None:
        found += [f"{name}.{namespace}", f"{name}.{namespace}.svc"]
        found.append(f"{name}.{namespace}.svc.cluster.local")
    return tuple(found)


def _deployment(deployment: Deployment, options: ClusterOptions) -> dict[str, Any]:
    name = options.object_name(deployment)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(name, name, options, _annotations(deployment)),
        "spec": {
            # The autoscaler owns the count from here on; this is the first one.
            "replicas": options.min_replicas,
            "selector": {"matchLabels": selector(name)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {"labels": labels(name)},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security(),
                    # drain_delay_s (5 s) plus the time to answer what is in flight.
                    "terminationGracePeriodSeconds": 30,
                    "containers": [server_container(deployment, options)],
                    "volumes": volumes(),
                },
            },
        },
    }


def _annotations(deployment: Deployment) -> dict[str, str]:
    # The weight moves at every step of a rollout, inside modelyard: not in the manifest.
    return rollout_annotations(deployment, weight=False)


def _service(name: str, options: ClusterOptions) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(name, name, options),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(name),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _autoscaler(name: str, options: ClusterOptions) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(name, name, options),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": options.min_replicas,
            "maxReplicas": options.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": options.target_cpu_percent,
                        },
                    },
                }
            ],
        },
    }


def _disruption_budget(name: str, options: ClusterOptions) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(name, name, options),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(name)}},
    }
