"""The ``modelyard`` command: thin, every command calls the library and prints a table.

A user error (unknown model, bad alias, tampered artifact) prints one line and
exits with status 2; tracebacks are left for bugs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.markup import escape

from modelyard.cli.bench import bench
from modelyard.cli.context import cli_context
from modelyard.cli.demo import demo_app
from modelyard.cli.deploy import deploy_app
from modelyard.cli.features import features_app
from modelyard.cli.logs import logs
from modelyard.cli.monitor import monitor_app
from modelyard.cli.output import console, print_table, when
from modelyard.cli.requests import requests
from modelyard.cli.retrain import history, retrain, retraining_app, worker
from modelyard.cli.serve import serve
from modelyard.errors import ModelyardError
from modelyard.registry.bundle import export_bundle

app = typer.Typer(
    help="modelyard: track, register, serve and watch models on one machine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
runs_app = typer.Typer(help="Training runs.", no_args_is_help=True)
models_app = typer.Typer(help="Registered models.", no_args_is_help=True)
alias_app = typer.Typer(help="Aliases such as champion and challenger.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(models_app, name="models")
app.add_typer(alias_app, name="alias")
app.add_typer(deploy_app)
app.add_typer(monitor_app, name="monitor")
app.add_typer(features_app, name="features")
app.command()(serve)
app.command()(logs)
app.command()(requests)
app.command()(bench)
app.command()(retrain)
app.command()(history)
app.command()(worker)
app.add_typer(retraining_app, name="retraining")
app.add_typer(demo_app, name="demo")


@app.command()
def init(ctx: typer.Context) -> None:
    """Create (or upgrade in place) the modelyard home: database and artifact store."""
    yard = cli_context(ctx).yard
    print_table(
        "modelyard home",
        ["setting", "value"],
        [
            ["home", yard.settings.home],
            ["database", yard.settings.resolved_database_url],
            ["artifacts", yard.settings.resolved_artifacts_url],
            ["schema revision", yard.db.current_revision()],
        ],
    )


@runs_app.command("list")
def runs_list(
    ctx: typer.Context,
    filter: Annotated[
        str, typer.Option(help="e.g. \"metrics.auc > 0.9 and params.model = 'rf'\"")
    ] = "",
    experiment: Annotated[str | None, typer.Option(help="Only this experiment.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
) -> None:
    """Runs, newest first."""
    found = cli_context(ctx).yard.tracking.search_runs(filter, experiment=experiment, limit=limit)
    print_table(
        f"{len(found)} run(s)",
        ["id", "name", "experiment", "status", "started", "metrics"],
        [
            [
                r.id[:12],
                r.name,
                r.experiment,
                r.status,
                when(r.start_time),
                ", ".join(f"{k}={v:.4g}" for k, v in sorted(r.metrics.items())[:4]),
            ]
            for r in found
        ],
    )


@runs_app.command("show")
def runs_show(
    ctx: typer.Context, run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix.")]
) -> None:
    """Everything recorded about one run."""
    run = cli_context(ctx).yard.tracking.get_run(run_id)
    rows: list[list[Any]] = [
        ["id", run.id],
        ["name", run.name],
        ["experiment", run.experiment],
        ["status", run.status],
        ["started", when(run.start_time)],
        ["ended", when(run.end_time)],
        ["seed", run.seed],
        ["git commit", run.git_commit],
        ["python", run.environment.get("python")],
    ]
    rows += [[f"param {k}", v] for k, v in sorted(run.params.items())]
    rows += [[f"metric {k}", f"{v:.6g}"] for k, v in sorted(run.metrics.items())]
    rows += [[f"tag {k}", v] for k, v in sorted(run.tags.items())]
    rows += [
        [f"dataset {k}", f"{d['rows']} rows, sha256 {d['digest'][:16]}"]
        for k, d in run.datasets.items()
    ]
    rows += [[f"artifact {k}", f"sha256 {v[:16]}"] for k, v in sorted(run.artifacts.items())]
    print_table(f"run {run.name}", ["field", "value"], rows)


@models_app.command("list")
def models_list(ctx: typer.Context) -> None:
    """Registered models with their latest version and aliases."""
    found = cli_context(ctx).yard.registry.list_models()
    print_table(
        f"{len(found)} model(s)",
        ["name", "latest", "aliases", "updated", "description"],
        [
            [
                m.name,
                m.latest_version,
                ", ".join(f"{a}->v{v}" for a, v in sorted(m.aliases.items())) or "-",
                when(m.updated_at),
                m.description,
            ]
            for m in found
        ],
    )


@models_app.command("show")
def models_show(ctx: typer.Context, name: str) -> None:
    """One model: description, tags, aliases and the history of alias moves."""
    registry = cli_context(ctx).yard.registry
    model = registry.get_model(name)
    rows: list[list[Any]] = [
        ["description", model.description],
        ["latest version", model.latest_version],
    ]
    rows += [[f"alias {a}", f"v{v}"] for a, v in sorted(model.aliases.items())]
    rows += [[f"tag {k}", v] for k, v in sorted(model.tags.items())]
    print_table(f"model {model.name}", ["field", "value"], rows)
    moves = registry.alias_history(name)
    if moves:
        print_table(
            "alias moves",
            ["when", "alias", "from", "to", "by", "why"],
            [[when(m.at), m.alias, m.from_version, m.to_version, m.actor, m.reason] for m in moves],
        )


@app.command()
def versions(ctx: typer.Context, name: str) -> None:
    """All versions of a model."""
    found = cli_context(ctx).yard.registry.list_versions(name)
    print_table(
        f"{name}: {len(found)} version(s)",
        ["version", "flavour", "aliases", "created", "run", "sha256", "inputs", "metrics"],
        [
            [
                v.version,
                v.flavour,
                ", ".join(v.aliases) or "-",
                when(v.created_at),
                (v.run_id or "-")[:12],
                v.artifact_digest[:12],
                f"{len(v.signature.inputs)} ({v.signature.layout})",
                ", ".join(f"{k}={val:.4g}" for k, val in sorted(v.metrics.items())[:3]),
            ]
            for v in found
        ],
    )


@alias_app.command("set")
def alias_set(
    ctx: typer.Context,
    name: str,
    alias: str,
    version: Annotated[int, typer.Argument(min=1)],
    reason: Annotated[str, typer.Option(help="Why; kept in the alias history.")] = "",
) -> None:
    """Point ALIAS of model NAME at VERSION (atomically, recorded with who/when/why)."""
    move = cli_context(ctx).yard.registry.set_alias(name, alias, version, reason=reason)
    before = f"v{move.from_version}" if move.from_version else "(unset)"
    console.print(f"{name}@{alias}: {before} -> v{move.to_version}")


@alias_app.command("history")
def alias_history(
    ctx: typer.Context, name: str, alias: Annotated[str | None, typer.Argument()] = None
) -> None:
    """Who moved which alias, when and why."""
    moves = cli_context(ctx).yard.registry.alias_history(name, alias)
    print_table(
        f"{name}: alias moves",
        ["when", "alias", "from", "to", "by", "why"],
        [[when(m.at), m.alias, m.from_version, m.to_version, m.actor, m.reason] for m in moves],
    )


@app.command()
def export(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="name, name/3 or name@alias")],
    out: Annotated[Path, typer.Option(help="Directory to write the bundle into.")] = Path("."),
) -> None:
    """Write a self-contained bundle (model, signature, profile, manifest with hashes)."""
    path = export_bundle(cli_context(ctx).yard.registry, ref, out)
    console.print(f"wrote {path} ({path.stat().st_size:,} bytes)")


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line and exit status 2 for a user error, never a traceback."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="modelyard", standalone_mode=False)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except ModelyardError as error:
        Console(stderr=True).print(
            f"[red]error:[/red] {escape(error.message)}", highlight=False, soft_wrap=True
        )
        sys.exit(2)
    sys.exit(result if isinstance(result, int) else 0)
