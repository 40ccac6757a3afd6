"""What the models, model and version pages show, as JSON-ready documents.

Read through the registry's ``Catalog`` (as ``modelyard models|versions|alias``
read), each page one range of an index: models by name, a model's versions newest
first by number (``Catalog.versions_page``'s keyset), a version by (model, number).
A model's retraining history is its deployments' events told as episodes
(``pipelines.history``, as ``modelyard history`` tells them).
"""

from __future__ import annotations

from typing import Any

from modelyard.errors import RunNotFoundError
from modelyard.pipelines.history import episodes
from modelyard.registry import ModelVersion, RegisteredModel
from modelyard.routing.deployment import Deployment
from modelyard.ui.context import UiContext
from modelyard.ui.data.profiles import profile_summary

ALIAS_MOVES_SHOWN = 50
RETRAIN_EVENTS = 500  # newest events read per deployment, as `modelyard history` reads
_METRICS_IN_ROW = 4


def model_json(model: RegisteredModel) -> dict[str, Any]:
    return {
        "name": model.name,
        "description": model.description,
        "latest_version": model.latest_version,
        "aliases": model.aliases,
        "tags": model.tags,
        "created_at": model.created_at,
        "updated_at": model.updated_at,
    }


def _serving(deployments: list[Deployment], model: str) -> list[dict[str, Any]]:
    """The deployments of ``model`` and the versions each sends traffic to."""
    return [
        {
            "name": d.name,
            "champion": d.config.champion,
            "canary": d.config.canary,
            "versions": sorted(d.config.versions),
        }
        for d in deployments
        if d.config.model == model
    ]


def models_page(ui: UiContext, limit: int, page_token: str | None) -> dict[str, Any]:
    """One page of registered models by name, with their aliases and deployments."""
    page = ui.yard.registry.models_page(limit=limit, page_token=page_token)
    # Deployments are few (each is a served endpoint); one read serves the whole page.
    deployments = ui.deployments.list()
    return {
        "models": [
            {**model_json(m), "deployments": [d["name"] for d in _serving(deployments, m.name)]}
            for m in page.models
        ],
        "next_page_token": page.next_page_token,
    }


def version_row(version: ModelVersion) -> dict[str, Any]:
    """A version as one row of the model page's table (a few metrics, not all)."""
    metrics = dict(sorted(version.metrics.items())[:_METRICS_IN_ROW])
    return {
        "version": version.version,
        "aliases": list(version.aliases),
        "flavour": version.flavour,
        "created_at": version.created_at,
        "created_by": version.created_by,
        "run_id": version.run_id,
        "parent_version": version.parent_version,
        "description": version.description,
        "metrics": metrics,
        "more_metrics": max(0, len(version.metrics) - len(metrics)),
        "artifact_size": version.artifact_size,
        "tags": version.tags,
    }


def model_page(ui: UiContext, name: str, limit: int, page_token: str | None) -> dict[str, Any]:
    """One model: its aliases and their latest moves, a page of versions newest first,
    and the deployments serving it."""
    registry = ui.yard.registry
    model = registry.get_model(name)  # ModelNotFoundError: 404
    page = registry.versions_page(name, limit=limit, page_token=page_token)
    moves = registry.alias_history(name)
    return {
        "model": model_json(model),
        "versions": [version_row(v) for v in page.versions],
        "next_page_token": page.next_page_token,
        "alias_history": [
            {
                "alias": m.alias,
                "from_version": m.from_version,
                "to_version": m.to_version,
                "actor": m.actor,
                "reason": m.reason,
                "at": m.at,
            }
            for m in reversed(moves[-ALIAS_MOVES_SHOWN:])
        ],
        "alias_moves": len(moves),
        "deployments": _serving(ui.deployments.list(), name),
    }


def _run_of(ui: UiContext, run_id: str | None) -> dict[str, Any] | None:
    if run_id is None:
        return None
    try:
        run = ui.yard.tracking.get_run(run_id)
    except RunNotFoundError:
        return {"id": run_id, "found": False}
    return {
        "id": run.id,
        "found": True,
        "name": run.name,
        "experiment": run.experiment,
        "status": run.status,
        "start_time": run.start_time,
    }


def version_page(ui: UiContext, name: str, number: int) -> dict[str, Any]:
    """One version: lineage (run, data fingerprints, parent), metrics, signature, the
    reference profile's summary, tags, format and artifact."""
    registry = ui.yard.registry
    version = registry.get_version(name, number)  # Model/VersionNotFoundError: 404
    lineage = version.lineage
    return {
        "model": name,
        "version": {
            **version_row(version),
            "metrics": version.metrics,
            "more_metrics": 0,
            "artifact_digest": version.artifact_digest,
            "profile_digest": version.profile_digest,
            "signature": version.signature.to_dict(),
            "trust": version.trust,
        },
        "lineage": {
            "run": _run_of(ui, version.run_id),
            "data": lineage.get("data"),
            "run_datasets": lineage.get("run_datasets") or {},
            "parent": version.parent_version,
        },
        "profile": profile_summary(registry.profile(name, number)),
    }


def retrains(ui: UiContext, name: str) -> dict[str, Any]:
    """The retraining history of every deployment of model ``name``: one episode per
    retrain, from its trigger to how its canary ended, newest first."""
    ui.yard.registry.get_model(name)  # ModelNotFoundError: 404
    found = []
    for deployment in _serving(ui.deployments.list(), name):
        events = ui.deployments.events(deployment["name"], "", limit=RETRAIN_EVENTS)
        stories = episodes(reversed(events))  # the store gives newest first
        found.append(
            {
                "deployment": deployment["name"],
                "episodes": [
                    {
                        "retrain": s.retrain,
                        "started_at": s.started_at,
                        "ended_at": s.ended_at,
                        "trigger": s.trigger,
                        "reason": s.reason,
                        "run_id": s.run_id,
                        "gate": s.gate,
                        "version": s.version,
                        "weights": s.weights,
                        "outcome": s.outcome,
                        "story": s.story(),
                    }
                    for s in reversed(stories)
                ],
            }
        )
    return {"model": name, "deployments": found}
