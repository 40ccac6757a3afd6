"""What the overview and the deployment pages show, as JSON-ready documents.

Each function reads through the library calls the CLI uses (``DeploymentStore``, the
event log, ``monitoring.traffic``), so a page and ``modelyard deploy show`` agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from modelyard.monitoring.traffic import traffic_series
from modelyard.routing.deployment import Deployment, Event
from modelyard.routing.experiment_reports import last_report, report_to_dict
from modelyard.ui.context import UiContext

OVERVIEW_SPAN_S = 300.0  # the request rate an overview row shows: the last five minutes
EVENT_LIMIT = 200


def event_json(event: Event) -> dict[str, Any]:
    return {
        "at": event.at,
        "kind": event.kind,
        "subject": event.subject,
        "reason": event.reason,
        "payload": event.payload,
        "actor": event.actor,
    }


def _summary(ui: UiContext, deployment: Deployment, now: float) -> dict[str, Any]:
    config = deployment.config
    buckets = ui.inference_log.traffic(
        deployment.name, now - OVERVIEW_SPAN_S, now + 1.0, OVERVIEW_SPAN_S
    )
    requests = sum(b.requests for b in buckets)
    errors = sum(b.errors for b in buckets)
    rollout = deployment.rollout
    return {
        "name": deployment.name,
        "model": config.model,
        "champion": config.champion,
        "canary": config.canary,
        "split": deployment.traffic.weights,
        "arms": deployment.arms,
        "rollout": None
        if rollout is None
        else {"phase": rollout.state.phase.value, "weight": rollout.state.weight},
        "experiment": config.experiment is not None,
        "shadows": [s.version for s in config.shadows],
        "requests_5m": requests,
        "error_rate_5m": errors / requests if requests else None,
        "updated_at": deployment.updated_at,
    }


def overview(ui: UiContext, now: float) -> dict[str, Any]:
    """Every deployment with its split and recent traffic, every model, the latest events."""
    deployments = ui.deployments.list()
    events: list[Event] = []
    for deployment in deployments:
        events.extend(ui.deployments.events(deployment.name, limit=20))
    events.sort(key=lambda e: e.at, reverse=True)
    models = ui.yard.registry.list_models()
    return {
        "now": now,
        "deployments": [_summary(ui, d, now) for d in deployments],
        "models": [
            {
                "name": m.name,
                "latest_version": m.latest_version,
                "aliases": m.aliases,
                "description": m.description,
                "updated_at": m.updated_at,
            }
            for m in models
        ],
        "events": [event_json(e) for e in events[:20]],
    }


def deployment_page(
    ui: UiContext,
    name: str,
    now: float,
    span_s: float,
    metrics: Callable[[], bytes] | None = None,
) -> dict[str, Any]:
    """One deployment: its state, the split, traffic and latency over ``span_s`` per
    version, the rollout's steps and verdicts, the experiment's latest report, the
    shadows' agreement (from the server's ``metrics``, when it runs in one), its events."""
    deployment = ui.deployments.get(name)
    series = traffic_series(ui.inference_log, name, now - span_s, now)
    experiment = deployment.config.experiment
    report = None
    if experiment is not None:
        found = last_report(ui.events, name, experiment)
        report = None if found is None else report_to_dict(found)
    return {
        "now": now,
        "deployment": deployment.to_dict(),
        "summary": _summary(ui, deployment, now),
        "series": {
            "bucket_s": series.bucket_s,
            "starts": series.starts,
            "versions": {str(v): asdict(figures) for v, figures in series.versions.items()},
        },
        "experiment_report": report,
        "shadow_agreement": None if metrics is None else shadow_agreement(metrics(), name),
        "events": [event_json(e) for e in ui.deployments.events(name, limit=EVENT_LIMIT)],
    }


def shadow_agreement(metrics_text: bytes, deployment: str) -> dict[str, dict[str, float]]:
    """Per shadow version of ``deployment``: the rows compared with the primary since the
    server started, those that agreed, and the share (``modelyard_shadow_rows``)."""
    found: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(metrics_text.decode()):
        if family.name != "modelyard_shadow_rows":
            continue
        for sample in family.samples:
            labels = sample.labels
            if labels.get("deployment") == deployment and sample.name.endswith("_total"):
                figures = found.setdefault(labels["version"], {"compared": 0.0, "agreed": 0.0})
                figures[labels["result"]] = sample.value
    for figures in found.values():
        figures["share"] = figures["agreed"] / figures["compared"] if figures["compared"] else 0.0
    return found
