"""``modelyard retrain``, ``retraining set|show|remove``, ``history`` and ``worker``."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Annotated, Any

import typer

from modelyard.cli.context import cli_context
from modelyard.cli.output import AsJson, console, print_json, print_table, when
from modelyard.config import override
from modelyard.errors import ValidationError
from modelyard.pipelines import GatePolicy, RetrainPlan, RetrainRecord
from modelyard.pipelines.history import episodes
from modelyard.pipelines.plan import AbPolicy
from modelyard.routing import RolloutPolicy
from modelyard.runner.worker import RetrainingWorker
from modelyard.serving.telemetry.jsonlog import JsonLog

retraining_app = typer.Typer(
    help="Retraining plans: pipeline, triggers, gate.", no_args_is_help=True
)


def retrain(
    ctx: typer.Context,
    deployment: str,
    reason: Annotated[str, typer.Option(help="Why; kept in the deployment's history.")] = "",
    as_json: AsJson = False,
) -> None:
    """Retrain DEPLOYMENT now: its plan's pipeline, gate, registration and canary."""
    context = cli_context(ctx)
    with console.status(f"retraining {deployment}…"):
        record = context.retraining.retrain(deployment, reason=reason, actor=context.actor)
    if as_json:
        print_json(record.to_dict())
        return
    _print_attempt(record)


@retraining_app.command("set")
def retraining_set(
    ctx: typer.Context,
    deployment: str,
    pipeline: Annotated[str, typer.Option(help="module:function returning a Candidate.")],
    schedule: Annotated[str | None, typer.Option(help="Cron, e.g. '0 3 * * *' (UTC).")] = None,
    timezone: Annotated[str, typer.Option(help="Time zone of the schedule.")] = "UTC",
    on_drift: Annotated[bool, typer.Option(help="Retrain when the inputs drift.")] = False,
    drift_checks: Annotated[int, typer.Option(min=1, help="Drifted checks in a row.")] = 2,
    on_alert: Annotated[bool, typer.Option(help="Retrain when an alert rule fires.")] = False,
    min_new_labels: Annotated[
        int | None, typer.Option(min=1, help="Retrain after this many new labels.")
    ] = None,
    window_days: Annotated[float, typer.Option(help="Days of data a run trains on.")] = 30.0,
    seed: Annotated[int, typer.Option(help="The runs' seed.")] = 0,
    cooldown: Annotated[float, typer.Option(help="Hours between automatic retrains.")] = 6.0,
    max_per_day: Annotated[int, typer.Option(min=1, help="Automatic retrains a day.")] = 4,
    metric: Annotated[str, typer.Option(help="Gate metric (roc_auc, accuracy, rmse, …).")] = (
        "roc_auc"
    ),
    min_delta: Annotated[
        float | None, typer.Option(help="Beat the champion by this much (absolute).")
    ] = 0.0,
    min_relative: Annotated[
        float | None, typer.Option(help="…and/or by this fraction of its value.")
    ] = None,
    threshold: Annotated[float | None, typer.Option(help="A floor the metric must reach.")] = None,
    confidence: Annotated[
        float, typer.Option(help="Of the gain, by a paired bootstrap (0: point estimate).")
    ] = 0.95,
    max_latency_ms: Annotated[float, typer.Option(help="p99 of one-row predictions.")] = 50.0,
    steps: Annotated[str, typer.Option(help="Canary weights in %, ending at 100.")] = (
        "5,25,50,100"
    ),
    interval: Annotated[float, typer.Option(min=0.001, help="Seconds per canary analysis.")] = (
        60.0
    ),
    min_requests: Annotated[int, typer.Option(min=1, help="Per arm, per analysis.")] = 100,
    max_decision_change: Annotated[
        float, typer.Option(help="Share of decisions the canary may change (1: any).")
    ] = 1.0,
    rollout: Annotated[
        str, typer.Option(help="How a candidate goes out: canary, or ab (promoted if it wins).")
    ] = "canary",
    ab_metric: Annotated[
        str, typer.Option(help="A/B metric: ctr (a recommender) or a feedback field.")
    ] = "ctr",
    ab_weight: Annotated[float, typer.Option(help="The candidate's share in %.")] = 50.0,
    ab_max_days: Annotated[float, typer.Option(help="Stop an undecided test after.")] = 7.0,
    ab_min_samples: Annotated[int, typer.Option(min=1, help="Per arm, before a verdict.")] = 200,
    as_json: AsJson = False,
) -> None:
    """Set how DEPLOYMENT is retrained (replacing its plan); `modelyard worker` runs it."""
    try:
        weights = tuple(float(w) for w in steps.split(","))
    except ValueError:
        raise ValidationError(
            f"--steps must be numbers separated by commas, got {steps!r}"
        ) from None
    plan = RetrainPlan(
        deployment=deployment,
        pipeline=pipeline,
        schedule=schedule,
        timezone=timezone,
        on_drift=on_drift,
        drift_checks=drift_checks,
        on_alert=on_alert,
        min_new_labels=min_new_labels,
        window_days=window_days,
        seed=seed,
        cooldown_s=cooldown * 3600.0,
        max_per_day=max_per_day,
        gate=GatePolicy(
            metric=metric,
            min_absolute_change=min_delta,
            min_relative_change=min_relative,
            threshold=threshold,
            confidence=confidence or None,
            max_latency_ms=max_latency_ms,
        ),
        rollout=RolloutPolicy(
            step_weights=weights,
            interval_s=interval,
            min_requests=min_requests,
            max_decision_change=max_decision_change,
        ),
        rollout_kind=rollout,
        ab=AbPolicy(
            metric=ab_metric,
            weight=ab_weight,
            max_days=ab_max_days,
            min_samples_per_arm=ab_min_samples,
        ),
    )
    context = cli_context(ctx)
    context.retraining.configure(plan, actor=context.actor)
    if as_json:
        print_json(plan.to_dict())
        return
    _print_plan(plan)


@retraining_app.command("show")
def retraining_show(
    ctx: typer.Context,
    deployment: str,
    limit: Annotated[int, typer.Option(min=1, help="Attempts to list.")] = 10,
    as_json: AsJson = False,
) -> None:
    """DEPLOYMENT's plan and its latest retraining attempts."""
    loop = cli_context(ctx).retraining
    plan = loop.plan(deployment)
    attempts = loop.attempts(deployment, limit)
    if as_json:
        print_json({"plan": plan.to_dict(), "retrains": [r.to_dict() for r in attempts]})
        return
    _print_plan(plan)
    print_table(
        f"{deployment}: retraining attempts (newest first)",
        ["id", "started", "trigger", "status", "run", "version", "ended", "why / error"],
        [
            [
                r.id,
                when(r.started_at),
                r.trigger,
                r.status,
                (r.run_id or "")[:8] or None,
                r.version,
                when(r.ended_at),
                r.error or r.reason,
            ]
            for r in attempts
        ],
    )


@retraining_app.command("remove")
def retraining_remove(ctx: typer.Context, deployment: str) -> None:
    """Stop retraining DEPLOYMENT automatically (its history stays)."""
    loop = cli_context(ctx).retraining
    loop.plan(deployment)
    loop.remove(deployment, actor=cli_context(ctx).actor)
    console.print(f"{deployment}: retraining plan removed")


def history(
    ctx: typer.Context,
    deployment: str,
    events: Annotated[bool, typer.Option("--events", help="Every event, not the stories.")] = (
        False
    ),
    limit: Annotated[int, typer.Option(min=1, help="Events to read, newest first.")] = 500,
    as_json: AsJson = False,
) -> None:
    """What happened to DEPLOYMENT's model and why: one row per retrain, from its trigger
    through the gate and the canary to promotion or rollback."""
    store = cli_context(ctx).deployments
    store.get(deployment)
    found = list(reversed(store.events(deployment, "", limit=limit)))
    if events:
        if as_json:
            print_json([e.__dict__ for e in found])
            return
        print_table(
            f"{deployment}: events (oldest first)",
            ["when", "event", "by", "what"],
            [[when(e.at), e.kind, e.actor, e.reason] for e in found],
        )
        return
    stories = episodes(found)
    if as_json:
        print_json([{**s.__dict__, "story": s.story()} for s in stories])
        return
    print_table(
        f"{deployment}: retrains (oldest first)",
        ["#", "started", "trigger", "version", "outcome", "story"],
        [
            [s.retrain, when(s.started_at), s.trigger, s.version, s.outcome, s.story()]
            for s in stories
        ],
    )


def worker(
    ctx: typer.Context,
    metrics_port: Annotated[
        int | None, typer.Option(help="Port of /metrics (retraining.metrics_port, 9108).")
    ] = None,
    check_interval: Annotated[
        float | None, typer.Option(help="Seconds between trigger checks (30).")
    ] = None,
    trusted: Annotated[
        bool, typer.Option(help="Let pickle-based champions load for the gate.")
    ] = False,
) -> None:
    """Run the retraining plans: check triggers and schedules, retrain, gate, roll out.
    Stops cleanly on SIGTERM or Ctrl-C."""
    settings = cli_context(ctx).settings
    changes: dict[str, Any] = {}
    if metrics_port is not None:
        changes["metrics_port"] = metrics_port
    if check_interval is not None:
        changes["check_interval_s"] = check_interval
    if changes:
        settings = override(settings, retraining=changes)
    log_path = settings.serving.log_path

    running = RetrainingWorker(
        settings,
        open_log=lambda name: JsonLog(
            log_path, worker=name, rotate_bytes=settings.serving.log_rotate_bytes
        ),
        trusted=trusted,
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    running.start()
    console.print(
        f"retraining worker up: /metrics on http://{settings.retraining.metrics_host}:"
        f"{running.port}/metrics, checking every {settings.retraining.check_interval_s:g} s"
    )
    sys.stdout.flush()
    stop.wait()
    idle = running.stop()
    console.print("worker stopped" + ("" if idle else " (a retrain was cut short)"))


def _print_plan(plan: RetrainPlan) -> None:
    gate = plan.gate
    margin = [f"+{gate.min_absolute_change:g}"] if gate.min_absolute_change is not None else []
    if gate.min_relative_change is not None:
        margin.append(f"+{gate.min_relative_change:.1%}")
    rows: list[list[Any]] = [
        ["pipeline", plan.pipeline],
        ["triggers", ", ".join(plan.triggers) or "manual only (modelyard retrain)"],
        ["data window", f"{plan.window_days:g} days"],
        ["seed", plan.seed],
        [
            "gate",
            f"{gate.metric} beats the champion by {' and '.join(margin) or 'anything'}"
            + ("" if gate.confidence is None else f" at {gate.confidence:.0%} confidence")
            + ("" if gate.threshold is None else f", at least {gate.threshold:g}")
            + f"; p99 <= {gate.max_latency_ms:g} ms; outputs finite",
        ],
        _rollout_row(plan),
        [
            "guard rails",
            f"cool-down {plan.cooldown_s / 3600:g} h, at most {plan.max_per_day} a "
            "day, none while a rollout or an experiment runs",
        ],
    ]
    print_table(f"{plan.deployment}: retraining plan", ["setting", "value"], rows)


def _rollout_row(plan: RetrainPlan) -> list[Any]:
    if plan.rollout_kind == "ab":
        ab = plan.ab
        return [
            "A/B test",
            f"{ab.weight:g}% to the candidate, judged on {ab.metric} (sequential, "
            f">= {ab.min_samples_per_arm} per arm), promoted if it wins, "
            f"stopped after {ab.max_days:g} days",
        ]
    weights = ", ".join(f"{w:g}%" for w in plan.rollout.step_weights)
    return ["canary", f"steps {weights} every {plan.rollout.interval_s:g} s"]


def _print_attempt(record: RetrainRecord) -> None:
    rows: list[list[Any]] = [
        ["attempt", record.id],
        ["status", record.status],
        ["trigger", f"{record.trigger}: {record.reason}"],
        ["run", record.run_id],
        ["champion", record.champion],
        ["new version", record.version],
    ]
    if record.error:
        rows.append(["error", record.error])
    print_table(f"{record.deployment}: retrain {record.id}", ["field", "value"], rows)
    gate = record.gate or {}
    if gate.get("checks"):
        print_table(
            "gate",
            ["check", "passed", "value", "limit", "detail"],
            [
                [
                    c["name"],
                    "yes" if c["passed"] else "NO",
                    _figure(c["value"]),
                    _figure(c["limit"]),
                    c["detail"],
                ]
                for c in gate["checks"]
            ],
        )


def _figure(value: Any) -> Any:
    return f"{value:.4g}" if isinstance(value, float) else value
