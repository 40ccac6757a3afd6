"""``modelyard ab start|report|stop``: A/B experiments on a deployment.

Mounted under ``deploy_app`` (``cli.deploy``) as ``ab``.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated

import typer

from modelyard.cli.context import cli_context
from modelyard.cli.deployment_tables import (
    Reason,
    deployment_json,
    show_change,
    show_deployment,
)
from modelyard.cli.output import AsJson, print_json, print_table
from modelyard.errors import ValidationError
from modelyard.monitoring.feedback_join import request_outcomes
from modelyard.routing.abtest import FixedHorizon, Sequential
from modelyard.routing.experiment_reports import ExperimentReporter
from modelyard.routing.experiments import LoggedOutcomes, OutcomeKind
from modelyard.routing.sql import SqlDeploymentRepository

__all__ = ["ab_app"]

ab_app = typer.Typer(help="A/B experiments on a deployment.", no_args_is_help=True)


def _arm(text: str) -> tuple[str, str, float]:
    arm, _, rest = text.partition("=")
    ref, _, weight = rest.rpartition(":")
    try:
        return arm, ref, float(weight)
    except ValueError as error:
        raise ValidationError(
            f"--arm must look like a=3:50 (name=version:weight), got {text!r}"
        ) from error


@ab_app.command("start")
def ab_start(
    ctx: typer.Context,
    name: str,
    arm: Annotated[list[str], typer.Option(help="name=version:weight, e.g. a=3:50. Repeat.")],
    control: Annotated[str, typer.Option(help="Control arm (default: the first).")] = "",
    sequential: Annotated[
        bool, typer.Option("--sequential/--fixed", help="Always-valid mSPRT, or fixed horizon.")
    ] = True,
    tau: Annotated[float | None, typer.Option(help="Sequential: plausible effect size.")] = None,
    n_per_arm: Annotated[int | None, typer.Option(min=1, help="Fixed: samples per arm.")] = None,
    baseline: Annotated[float | None, typer.Option(help="Fixed: control rate, to size n.")] = None,
    mde: Annotated[float | None, typer.Option(help="Fixed: smallest effect worth finding.")] = None,
    alpha: Annotated[float, typer.Option()] = 0.05,
    metric: Annotated[str, typer.Option(help="'label' or a field of the outcome event.")] = "label",
    kind: Annotated[str, typer.Option(help="'conversion' (0/1) or 'mean'.")] = "conversion",
    lower_is_better: Annotated[bool, typer.Option("--lower-is-better")] = False,
    reason: Reason = "",
    as_json: AsJson = False,
) -> None:
    """Split traffic over arms (sticky by routing key) and compare their outcomes."""
    arms = [_arm(text) for text in arm]
    design: FixedHorizon | Sequential
    if sequential:
        if tau is None:
            raise ValidationError("--sequential needs --tau, a plausible effect size (e.g. 0.02)")
        design = Sequential(tau, alpha)
    elif n_per_arm is not None:
        design = FixedHorizon(n_per_arm, alpha)
    elif baseline is not None and mde is not None:
        design = FixedHorizon.for_conversions(baseline, mde, alpha, treatments=len(arms) - 1)
    else:
        raise ValidationError("--fixed needs --n-per-arm, or --baseline and --mde to size it")
    if kind not in ("conversion", "mean"):
        raise ValidationError(f"--kind must be 'conversion' or 'mean', got {kind!r}")
    outcome: OutcomeKind = "conversion" if kind == "conversion" else "mean"
    cli = cli_context(ctx)
    before = cli.deployments.get(name)
    done = cli.deployments.start_experiment(
        name,
        arms,
        design,
        control=control,
        metric=metric,
        kind=outcome,
        higher_is_better=not lower_is_better,
        actor=cli.actor,
        reason=reason,
    )
    show_change(before, done, as_json)


@ab_app.command("report")
def ab_report(ctx: typer.Context, name: str, as_json: AsJson = False) -> None:
    """Each arm's estimate and lift over control, and whether a winner is declared."""
    cli = cli_context(ctx)
    found = cli.deployments.get(name)
    experiment = found.config.experiment
    if experiment is None:
        raise ValidationError(f"deployment {name!r} runs no experiment; start one with `ab start`")
    outcomes = LoggedOutcomes(partial(request_outcomes, cli.inference_log))
    reporter = ExperimentReporter(SqlDeploymentRepository(cli.yard.db), outcomes)
    report = reporter.report(name, experiment, actor=cli.actor)
    if as_json:
        print_json({"deployment": deployment_json(found), "report": report})
        return
    show_deployment(found)
    print_table(
        f"{name}: {report.verdict} ({report.design}): {report.reason}",
        ["arm", "n", "estimate", "lift", "CI", "p"],
        [
            [
                a.name,
                a.n,
                f"{a.estimate:.4g}",
                None if a.lift is None else f"{a.lift:+.4g}",
                None if a.ci_low is None else f"{a.ci_low:+.4g} to {a.ci_high:+.4g}",
                None if a.p_value is None else f"{a.p_value:.3g}",
            ]
            for a in report.arms
        ],
    )


@ab_app.command("stop")
def ab_stop(
    ctx: typer.Context,
    name: str,
    promote: Annotated[str | None, typer.Option(help="Arm whose version becomes champion.")] = None,
    reason: Reason = "",
    as_json: AsJson = False,
) -> None:
    """End the experiment; optionally make one arm's version the champion."""
    cli = cli_context(ctx)
    before = cli.deployments.get(name)
    show_change(
        before,
        cli.deployments.stop_experiment(name, promote=promote, actor=cli.actor, reason=reason),
        as_json,
    )
