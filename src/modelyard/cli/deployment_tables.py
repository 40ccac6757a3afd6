"""How the deployment commands print a deployment: its state, and what a command changed.

Shared by ``deploy`` (deployments, rollouts, shadows) and ``ab`` (A/B experiments).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from modelyard.cli.output import print_json, print_table, when
from modelyard.routing.deployment import Deployment, DeploymentConfig

Reason = Annotated[str, typer.Option(help="Why; kept in the deployment's history.")]


def deployment_json(deployment: Deployment | None) -> dict[str, Any] | None:
    """The deployment as stored, for ``--json``."""
    return None if deployment is None else deployment.to_dict()


def log_policy_text(config: DeploymentConfig) -> str:
    rate = "server default" if config.log_sample_rate is None else f"{config.log_sample_rate:.0%}"
    ttl = "server default" if config.log_ttl_days is None else f"{config.log_ttl_days:g} days"
    return f"sample {rate}, keep {ttl}"


def target_text(config: DeploymentConfig) -> str:
    """``kserve, 2-10 replicas, image=..., namespace=...``."""
    target = config.target
    parts = [target.kind]
    low, high = target.min_replicas, target.max_replicas
    if low is not None or high is not None:
        parts.append(f"{low or '-'}-{high or '-'} replicas")
    parts += [f"{key}={value}" for key, value in sorted(target.options.items())]
    return ", ".join(parts)


def deployment_fields(deployment: Deployment | None) -> dict[str, str]:
    """The deployment as field -> text, the rows of both the state and the change tables."""
    if deployment is None:
        return {}
    config = deployment.config
    rows = {
        "model": config.model,
        "champion": f"v{config.champion}",
        "canary": "-"
        if config.canary is None
        else f"v{config.canary} at {config.canary_weight:g}%",
        "shadows": ", ".join(f"v{s.version} ({s.share:.0%})" for s in config.shadows) or "-",
        "experiment": "-",
        "routing key": str(config.routing_key or "-"),
        "features": "-" if config.features is None else ", ".join(config.features.refs),
        "event time": "-"
        if config.features is None or config.features.event_time is None
        else f"field {config.features.event_time}",
        "follows alias": config.follow_alias or "-",
        "inference log": log_policy_text(config),
        "rollout": "-",
    }
    if not config.target.is_default:  # the row appears once a deployment runs elsewhere
        rows["target"] = target_text(config)
    if config.canary is not None:
        rows["canary"] = f"v{config.canary} at {config.canary_weight:g}%"
    if config.experiment is not None:
        arms = ", ".join(f"{a.name}=v{a.version}:{a.weight:g}%" for a in config.experiment.arms)
        rows["experiment"] = f"{arms} (control {config.experiment.control})"
    record = deployment.rollout
    if record is not None:
        state, steps = record.state, record.policy.step_weights
        due = max(state.window_started_at, record.checked_at) + record.policy.interval_s
        rows["rollout"] = (
            f"v{record.canary} {state.phase} at {state.weight:g}% "
            f"(step {state.step_index + 1}/{len(steps)}, failed checks {state.failed_checks}"
            + (f", next analysis {when(due)})" if state.active else ")")
        )
    return rows


def show_deployment(deployment: Deployment) -> None:
    """Print the deployment's current state."""
    rows: list[list[Any]] = [[k, v] for k, v in deployment_fields(deployment).items()]
    rows += [["revision", deployment.revision], ["updated", when(deployment.updated_at)]]
    print_table(f"deployment {deployment.name}", ["field", "value"], rows)


def show_change(before: Deployment | None, after: Deployment, as_json: bool = False) -> None:
    """Print what changed (before -> after), then the current state; with ``as_json``, one
    document ``{"before": ..., "after": ...}``."""
    if as_json:
        print_json({"before": deployment_json(before), "after": deployment_json(after)})
        return
    old, new = deployment_fields(before), deployment_fields(after)
    rows = [[k, old.get(k, "-"), v] for k, v in new.items() if old.get(k, "-") != v]
    start = "new" if before is None else f"revision {before.revision}"
    title = f"{after.name}: {start} -> revision {after.revision}"
    if before is not None and before.revision == after.revision:
        title = f"{after.name}: nothing to change"
    print_table(title, ["field", "before", "after"], rows)
    show_deployment(after)
