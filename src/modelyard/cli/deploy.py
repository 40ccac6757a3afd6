"""``modelyard deploy``, ``deployments``, ``rollout ...``, ``shadow``; ``ab ...`` is ``cli.ab``.

Each command calls the routing library, then prints what changed (before ->
after) and the deployment's state as tables. Mounted on the main app with
``app.add_typer(deploy_app)`` (no name: its commands join the top level).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

import typer

from modelyard.cli.ab import ab_app
from modelyard.cli.context import CliContext, cli_context
from modelyard.cli.deployment_tables import (
    Reason,
    deployment_fields,
    deployment_json,
    show_change,
    show_deployment,
)
from modelyard.cli.output import AsJson, print_json, print_note, print_table, when
from modelyard.cli.targets import (
    Image,
    MaxReplicas,
    MinReplicas,
    Namespace,
    Options,
    TargetFlags,
    TargetKind,
    platform_status,
    target_from_flags,
)
from modelyard.errors import NotFoundError, ValidationError
from modelyard.routing.canary import RolloutPolicy
from modelyard.routing.deployment import (
    Change,
    Deployment,
    Event,
    FeatureInputs,
    RoutingKey,
)

__all__ = ["deploy", "deploy_app"]

deploy_app = typer.Typer(help="Deployments: canary rollouts, shadows and A/B tests.")
rollout_app = typer.Typer(help="Canary rollouts of a deployment.", no_args_is_help=True)
deploy_app.add_typer(rollout_app, name="rollout")
deploy_app.add_typer(ab_app, name="ab")


@deploy_app.command("deploy")
def deploy(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Deployment (endpoint) name.")],
    model: Annotated[str, typer.Option(help="Registered model to serve.")],
    version: Annotated[int | None, typer.Option(min=1, help="Champion version.")] = None,
    alias: Annotated[str | None, typer.Option(help="Champion: the version an alias names.")] = None,
    follow_alias: Annotated[
        str | None, typer.Option(help="Keep the champion on this alias as it moves.")
    ] = None,
    routing_key: Annotated[
        str | None, typer.Option(help="Sticky key: 'header:x-user-id' or 'field:user_id'.")
    ] = None,
    log_sample_rate: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Share of requests kept in the inference log."),
    ] = None,
    log_ttl_days: Annotated[
        float | None,
        typer.Option(min=0.0, help="Days the inference log keeps requests (0: forever)."),
    ] = None,
    features: Annotated[
        str | None,
        typer.Option(
            help="Model inputs fetched from the feature store: 'view:feature,...' ('' stops)."
        ),
    ] = None,
    on_missing: Annotated[
        str,
        typer.Option(help="An entity the store does not know: 'reject' (422) or 'defaults'."),
    ] = "reject",
    event_time: Annotated[
        str | None,
        typer.Option(
            metavar="FIELD",
            help="Request field with each row's event time (epoch seconds): features are "
            "read as of it, capped at now, not at arrival ('' reads as of now).",
        ),
    ] = None,
    target: TargetKind = None,
    min_replicas: MinReplicas = None,
    max_replicas: MaxReplicas = None,
    image: Image = None,
    namespace: Namespace = None,
    option: Options = None,
    reason: Reason = "",
    as_json: AsJson = False,
) -> None:
    """Create deployment NAME serving a version of MODEL, or point an existing one elsewhere;
    --target says where it runs (docs/kubernetes.md)."""
    if (version is None) == (alias is None):
        raise ValidationError("give exactly one of --version or --alias for the champion")
    cli = cli_context(ctx)
    flags = TargetFlags(target, min_replicas, max_replicas, image, namespace, option)
    champion: int | str = version if version is not None else str(alias)
    features_given, inputs = _feature_inputs(cli, features, on_missing, event_time)
    try:
        existing = cli.deployments.get(name)
    except NotFoundError:
        if event_time and inputs is None:
            raise ValidationError(
                "--event-time needs --features: it says when the features are read"
            ) from None
        made = cli.deployments.create(
            name,
            model,
            champion,
            actor=cli.actor,
            reason=reason,
            follow_alias=follow_alias,
            routing_key=routing_key,
            log_sample_rate=log_sample_rate,
            log_ttl_days=log_ttl_days,
            features=inputs,
            target=target_from_flags(flags),
        )
        show_change(None, made, as_json)
        return
    number = cli.deployments.resolve_version(model, champion)
    key = RoutingKey.parse(routing_key) if routing_key else existing.config.routing_key
    why = reason or f"champion set to {model}/{number}"

    def change(current: Deployment) -> Change:
        current.require_idle("change the champion")
        config = current.config
        shadows = config.shadows if model == config.model else ()
        config = replace(
            config,
            model=model,
            champion=number,
            shadows=tuple(s for s in shadows if s.version != number),
            routing_key=key,
            follow_alias=follow_alias or config.follow_alias,
            log_sample_rate=config.log_sample_rate if log_sample_rate is None else log_sample_rate,
            log_ttl_days=config.log_ttl_days if log_ttl_days is None else log_ttl_days,
            features=inputs if features_given else _with_event_time(config.features, event_time),
            target=target_from_flags(flags, config.target) or config.target,
        )
        return Change(config, current.rollout, why)

    done = cli.deployments.mutate(name, change, actor=cli.actor, kind="deployment.update")
    show_change(existing, done, as_json)


def _feature_inputs(
    cli: CliContext, text: str | None, on_missing: str, event_time: str | None
) -> tuple[bool, FeatureInputs | None]:
    """``--features`` (and ``--event-time``): whether it was given, and the inputs it
    names (None for '': fetch nothing), each checked against the feature definitions now."""
    if text is None:
        return False, None
    refs = tuple(part.strip() for part in text.split(",") if part.strip())
    if not refs:
        return True, None
    inputs = FeatureInputs(refs, on_missing, event_time=event_time or None)  # type: ignore[arg-type]
    for ref in refs:
        view, feature = ref.split(":")
        found = cli.feature_registry.view(view)
        if feature not in found.feature_names:
            raise ValidationError(f"feature view {view!r} has no feature {feature!r}")
        if inputs.event_time == found.entity.key:
            raise ValidationError(
                f"--event-time {inputs.event_time!r} is the entity's key; name another field"
            )
    return True, inputs


def _with_event_time(inputs: FeatureInputs | None, event_time: str | None) -> FeatureInputs | None:
    """The deployment's feature inputs with ``--event-time`` applied ('' clears it), when
    only that option is given."""
    if event_time is None:
        return inputs
    if inputs is None:
        raise ValidationError("--event-time needs --features: this deployment fetches none")
    return replace(inputs, event_time=event_time or None)


@deploy_app.command("deployments")
def deployments(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="One deployment: its state and history.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """All deployments, or one deployment's state and history (who, when, why)."""
    store = cli_context(ctx).deployments
    if as_json:
        if name is None:
            print_json([deployment_json(d) for d in store.list()])
            return
        history = [
            {"revision": h.revision, "at": h.at, "by": h.actor, "reason": h.reason}
            for h in store.history(name)
        ]
        print_json({"deployment": deployment_json(store.get(name)), "history": history})
        return
    if name is None and not store.list():
        print_note("no deployments yet: `modelyard deploy NAME --model M --alias champion`")
        return
    if name is None:
        rows = [
            [
                d.name,
                d.config.model,
                *list(deployment_fields(d).values())[1:4],
                d.revision,
                when(d.updated_at),
            ]
            for d in store.list()
        ]
        columns = ["name", "model", "champion", "canary", "shadows", "revision", "updated"]
        print_table(f"{len(rows)} deployment(s)", columns, rows)
        return
    show_deployment(store.get(name))
    print_table(
        f"{name}: history",
        ["revision", "when", "by", "why"],
        [[h.revision, when(h.at), h.actor, h.reason] for h in store.history(name)],
    )


# -- rollouts -------------------------------------------------------------------------------


@rollout_app.command("start")
def rollout_start(
    ctx: typer.Context,
    name: str,
    canary: Annotated[str, typer.Option(help="Canary version: a number or an alias.")],
    steps: Annotated[str, typer.Option(help="Canary weights in %, ending at 100.")] = "5,25,50,100",
    interval: Annotated[float, typer.Option(min=0.001, help="Seconds per analysis.")] = 60.0,
    min_requests: Annotated[int, typer.Option(min=1, help="Per arm, per analysis.")] = 100,
    failure_threshold: Annotated[
        int, typer.Option(min=1, help="Failed analyses before a rollback.")
    ] = 2,
    max_error_rate: Annotated[
        float | None, typer.Option(help="Canary's server errors, a fraction (0.01).")
    ] = None,
    max_p99_ms: Annotated[
        float | None, typer.Option(help="Canary's p99 in ms, absolute (500).")
    ] = None,
    max_p99_ratio: Annotated[
        float | None, typer.Option(help="Canary/champion p99 (1.2); slower only past this…")
    ] = None,
    max_p99_increase_ms: Annotated[
        float | None, typer.Option(help="…and past this many ms over the champion's p99 (5).")
    ] = None,
    max_decision_change: Annotated[
        float | None,
        typer.Option(help="Share of requests the champion would decide otherwise (0.05)."),
    ] = None,
    max_accuracy_drop: Annotated[
        float | None, typer.Option(help="Classifiers, on labelled requests: accuracy (0.02).")
    ] = None,
    max_error_increase: Annotated[
        float | None,
        typer.Option(help="Regressors, on labelled requests: relative mean abs. error (0.1)."),
    ] = None,
    max_prediction_divergence: Annotated[
        float | None, typer.Option(help="KS / Jensen-Shannon of scores, in [0, 1] (0.1).")
    ] = None,
    divergence_gate: Annotated[
        bool | None,
        typer.Option(
            "--divergence-gate/--divergence-warns",
            help="Whether score divergence fails a canary (default: it only warns).",
            show_default=False,
        ),
    ] = None,
    alpha: Annotated[
        float | None, typer.Option(help="Significance of a failed check, whole rollout (1e-3).")
    ] = None,
    rollback_alpha: Annotated[
        float | None, typer.Option(help="Significance of a clear breach: rollback at once (1e-5).")
    ] = None,
    reason: Reason = "",
    as_json: AsJson = False,
) -> None:
    """Start walking a canary version through traffic steps, judged at every interval.

    Limits left out keep the policy's defaults (in brackets); `rollout status` shows
    the policy in force and every check of every analysis.
    """
    try:
        weights = tuple(float(w) for w in steps.split(","))
    except ValueError as error:
        raise ValidationError(
            f"--steps must be numbers separated by commas, got {steps!r}"
        ) from error
    given = {
        "max_error_rate": max_error_rate,
        "max_p99_ms": max_p99_ms,
        "max_p99_ratio": max_p99_ratio,
        "max_p99_increase_ms": max_p99_increase_ms,
        "max_decision_change": max_decision_change,
        "max_accuracy_drop": max_accuracy_drop,
        "max_error_increase": max_error_increase,
        "max_prediction_divergence": max_prediction_divergence,
        "divergence_gate": divergence_gate,
        "alpha": alpha,
        "rollback_alpha": rollback_alpha,
    }
    policy = RolloutPolicy(
        step_weights=weights,
        interval_s=interval,
        min_requests=min_requests,
        failure_threshold=failure_threshold,
        **{k: v for k, v in given.items() if v is not None},  # type: ignore[arg-type]
    )
    cli = cli_context(ctx)
    before = cli.deployments.get(name)
    started = cli.controller.start(name, canary, policy, actor=cli.actor, reason=reason)
    show_change(before, started, as_json)


# How each check's figures read: a share, milliseconds, or a plain number.
_PERCENT = {"error_rate", "error_rate_vs_champion", "decisions"}
_MILLISECONDS = {"p99", "p99_vs_champion"}


def _figure(check: str, value: object) -> str:
    if not isinstance(value, int | float):
        return "-" if value is None else str(value)
    if check in _PERCENT:
        return f"{value:.2%}"
    if check in _MILLISECONDS:
        return f"{value:.1f} ms"
    return f"{value:.4g}"


def _analyses(events: list[Event]) -> list[dict[str, Any]]:
    """The judged analyses among ``events`` (newest first), each with its checks."""
    return [
        {
            "at": e.at,
            "decision": e.kind.removeprefix("rollout."),
            "reason": e.reason,
            "analysis": e.payload.get("figures", {}).get("analysis"),
            "alpha": e.payload.get("figures", {}).get("alpha"),
            "checks": e.payload["checks"],
        }
        for e in events
        if e.payload.get("checks")
    ]


@rollout_app.command("status")
def rollout_status(
    ctx: typer.Context,
    name: str,
    analyses: Annotated[int, typer.Option(min=1, help="Analyses to show, newest first.")] = 3,
    as_json: AsJson = False,
) -> None:
    """The rollout's state and policy, every check of its recent analyses (value, limit,
    confidence bound, verdict) and its recent decisions with their reasons."""
    store = cli_context(ctx).deployments
    deployment = store.get(name)
    found = store.events(name, "rollout.", limit=50)
    judged = _analyses(found)[:analyses]
    record = deployment.rollout
    platform = platform_status(store, deployment)
    if as_json:
        print_json(
            {
                "deployment": name,
                "rollout": None if record is None else record.to_dict(),
                "platform": platform,
                "analyses": judged,
                "decisions": [
                    {
                        "at": e.at,
                        "decision": e.kind.removeprefix("rollout."),
                        "by": e.actor,
                        "reason": e.reason,
                    }
                    for e in found[:20]
                ],
            }
        )
        return
    show_deployment(deployment)
    if record is not None:
        policy = record.policy.to_dict()
        policy["step_weights"] = ", ".join(f"{w:g}" for w in record.policy.step_weights)
        print_table(
            f"{name}: rollout policy", ["parameter", "value"], [[k, v] for k, v in policy.items()]
        )
    for analysis in judged:
        print_table(
            f"analysis {analysis['analysis'] or '?'} at {when(analysis['at'])}: "
            f"{analysis['decision']} (level {_figure('', analysis['alpha'])})",
            ["check", "verdict", "value", "limit", "bound", "detail"],
            [
                [
                    c["name"],
                    c["outcome"],
                    _figure(c["name"], c.get("value")),
                    _figure(c["name"], c.get("limit")),
                    _figure(c["name"], c.get("bound")),
                    c["summary"],
                ]
                for c in analysis["checks"]
            ],
        )
    if platform is not None:
        last = platform["last"]
        print_table(
            f"{name}: pushed to {platform['target']}",
            ["revision", "pushed", "last push"],
            [
                [
                    platform["revision"],
                    platform["pushed_revision"] or "-",
                    "-"
                    if last is None
                    else f"{when(last['at'])} {last['event']}: {last['reason']}",
                ]
            ],
        )
    print_table(
        f"{name}: rollout decisions (newest first)",
        ["when", "decision", "by", "reason"],
        [[when(e.at), e.kind.removeprefix("rollout."), e.actor, e.reason] for e in found[:20]],
    )


def _manual(ctx: typer.Context, action: str, name: str, note: str, as_json: bool) -> None:
    cli = cli_context(ctx)
    before = cli.deployments.get(name)
    operation = getattr(cli.controller, action)
    show_change(before, operation(name, actor=cli.actor, note=note or None), as_json)


@rollout_app.command("pause")
def rollout_pause(
    ctx: typer.Context, name: str, reason: Reason = "", as_json: AsJson = False
) -> None:
    """Freeze the canary at its current weight."""
    _manual(ctx, "pause", name, reason, as_json)


@rollout_app.command("resume")
def rollout_resume(
    ctx: typer.Context, name: str, reason: Reason = "", as_json: AsJson = False
) -> None:
    """Continue a paused rollout."""
    _manual(ctx, "resume", name, reason, as_json)


@rollout_app.command("promote")
def rollout_promote(
    ctx: typer.Context, name: str, reason: Reason = "", as_json: AsJson = False
) -> None:
    """Skip the remaining steps: the canary becomes the champion."""
    _manual(ctx, "promote", name, reason, as_json)


@rollout_app.command("abort")
def rollout_abort(
    ctx: typer.Context, name: str, reason: Reason = "", as_json: AsJson = False
) -> None:
    """Stop the rollout and send all traffic back to the champion."""
    _manual(ctx, "abort", name, reason, as_json)


# -- shadows --------------------------------------------------------------------------------


@deploy_app.command("shadow")
def shadow(
    ctx: typer.Context,
    name: str,
    version: Annotated[str | None, typer.Option(help="Version (or alias) to mirror to.")] = None,
    share: Annotated[float, typer.Option(help="Share of requests mirrored, 0-1.")] = 0.1,
    off: Annotated[
        bool, typer.Option("--off", help="Stop mirroring (this version, or all).")
    ] = False,
    reason: Reason = "",
    as_json: AsJson = False,
) -> None:
    """Mirror a share of traffic to a version whose answers are never returned."""
    cli = cli_context(ctx)
    before = cli.deployments.get(name)
    done = cli.deployments.set_shadow(
        name, version, None if off else share, actor=cli.actor, reason=reason
    )
    show_change(before, done, as_json)
