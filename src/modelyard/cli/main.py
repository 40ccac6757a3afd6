"""The ``modelyard`` command: thin, every command calls the library and prints a table
(or, with ``--json``, one JSON document).

A user error (unknown model, bad alias, tampered artifact) prints one line on stderr
and exits with status 2, whichever command met it (``Commands.invoke``); tracebacks are
left for bugs. ``--no-color`` before the command (or ``NO_COLOR``) turns colour off.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from modelyard.cli.bench import bench
from modelyard.cli.context import cli_context
from modelyard.cli.demo import demo_app
from modelyard.cli.deploy import deploy_app
from modelyard.cli.features import features_app
from modelyard.cli.logs import logs
from modelyard.cli.monitor import monitor_app
from modelyard.cli.optimize import optimize_app
from modelyard.cli.output import (
    AsJson,
    console,
    output_options,
    print_error,
    print_json,
    print_note,
    print_table,
    when,
)
from modelyard.cli.platforms import containerize, k8s_app
from modelyard.cli.requests import requests
from modelyard.cli.retrain import history, retrain, retraining_app, worker
from modelyard.cli.serve import serve
from modelyard.cli.ui import ui
from modelyard.errors import ModelyardError
from modelyard.registry import ModelVersion
from modelyard.registry.bundle import export_bundle
from modelyard.registry.edge import export_edge
from modelyard.tracking import RunInfo


class Commands(TyperGroup):
    """The root command: a ``ModelyardError`` from any command below it is one line on
    stderr and exit status 2, printed while the invocation's ``--no-color`` still holds."""

    def invoke(self, ctx: Any) -> Any:
        with output_options(no_color=bool(ctx.params.get("no_color"))):
            try:
                return super().invoke(ctx)
            except ModelyardError as error:
                print_error(error.message)
                raise typer.Exit(2) from None


app = typer.Typer(
    cls=Commands,
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
app.add_typer(k8s_app, name="k8s")
app.command()(serve)
app.command()(ui)
app.command()(containerize)
app.command()(logs)
app.command()(requests)
app.command()(bench)
app.command()(retrain)
app.command()(history)
app.command()(worker)
app.add_typer(retraining_app, name="retraining")
app.add_typer(demo_app, name="demo")
app.add_typer(optimize_app, name="optimize")


@app.callback()
def options(
    no_color: Annotated[
        bool, typer.Option("--no-color", help="No colours (as NO_COLOR=1 in the environment).")
    ] = False,
) -> None:
    """modelyard: track, register, serve and watch models on one machine."""
    # Commands.invoke reads the options, so they hold for the whole command.


@app.command()
def init(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Create (or upgrade in place) the modelyard home: database and artifact store."""
    yard = cli_context(ctx).yard
    home = {
        "home": str(yard.settings.home),
        "database": yard.settings.resolved_database_url,
        "artifacts": yard.settings.resolved_artifacts_url,
        "schema_revision": yard.db.current_revision(),
    }
    if as_json:
        print_json(home)
        return
    print_table(
        "modelyard home",
        ["setting", "value"],
        [[key.replace("_", " "), value] for key, value in home.items()],
    )


PageToken = Annotated[
    str | None,
    typer.Option(help="Where to continue: the next page token the previous page printed."),
]


@runs_app.command("list")
def runs_list(
    ctx: typer.Context,
    filter: Annotated[
        str, typer.Option(help="e.g. \"metrics.auc > 0.9 and params.model = 'rf'\"")
    ] = "",
    experiment: Annotated[str | None, typer.Option(help="Only this experiment.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Runs per page.")] = 50,
    page_token: PageToken = None,
    as_json: AsJson = False,
) -> None:
    """Runs, newest first, a page at a time."""
    page = cli_context(ctx).yard.tracking.search_runs_page(
        filter, experiment=experiment, limit=limit, page_token=page_token
    )
    if as_json:
        print_json(
            {
                "runs": [_run_json(r) for r in page.runs],
                "next_page_token": page.next_page_token,
            }
        )
        return
    print_table(
        f"{len(page.runs)} run(s)",
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
            for r in page.runs
        ],
    )
    _print_next(page.next_page_token)


def _run_json(run: RunInfo) -> dict[str, Any]:
    return {
        "id": run.id,
        "name": run.name,
        "experiment": run.experiment,
        "status": run.status,
        "start_time": run.start_time,
        "end_time": run.end_time,
        "params": run.params,
        "metrics": run.metrics,
    }


def _print_next(token: str | None) -> None:
    if token is not None:
        console.print(f"more: --page-token {token}", highlight=False)


@runs_app.command("show")
def runs_show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix.")],
    as_json: AsJson = False,
) -> None:
    """Everything recorded about one run."""
    run = cli_context(ctx).yard.tracking.get_run(run_id)
    if as_json:
        print_json(run)
        return
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
def models_list(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Registered models with their latest version and aliases."""
    found = cli_context(ctx).yard.registry.list_models()
    if as_json:
        print_json(found)
        return
    if not found:
        print_note("no models registered yet: Yard.register_model(...) registers one")
        return
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
def models_show(ctx: typer.Context, name: str, as_json: AsJson = False) -> None:
    """One model: description, tags, aliases and the history of alias moves."""
    registry = cli_context(ctx).yard.registry
    model = registry.get_model(name)
    if as_json:
        print_json({"model": model, "alias_moves": registry.alias_history(name)})
        return
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
def versions(
    ctx: typer.Context,
    name: str,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Versions per page.")] = 50,
    page_token: PageToken = None,
    as_json: AsJson = False,
) -> None:
    """A model's versions, newest first, a page at a time."""
    page = cli_context(ctx).yard.registry.versions_page(name, limit=limit, page_token=page_token)
    if as_json:
        print_json(
            {
                "versions": [_version_json(v) for v in page.versions],
                "next_page_token": page.next_page_token,
            }
        )
        return
    print_table(
        f"{name}: {len(page.versions)} version(s)",
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
            for v in page.versions
        ],
    )
    _print_next(page.next_page_token)


def _version_json(version: ModelVersion) -> dict[str, Any]:
    return {
        "version": version.version,
        "flavour": version.flavour,
        "aliases": list(version.aliases),
        "created_at": version.created_at,
        "created_by": version.created_by,
        "run_id": version.run_id,
        "artifact_digest": version.artifact_digest,
        "metrics": version.metrics,
        "tags": version.tags,
        "description": version.description,
    }


@alias_app.command("set")
def alias_set(
    ctx: typer.Context,
    name: str,
    alias: str,
    version: Annotated[int, typer.Argument(min=1)],
    reason: Annotated[str, typer.Option(help="Why; kept in the alias history.")] = "",
    as_json: AsJson = False,
) -> None:
    """Point ALIAS of model NAME at VERSION (atomically, recorded with who/when/why)."""
    move = cli_context(ctx).yard.registry.set_alias(name, alias, version, reason=reason)
    if as_json:
        print_json(move)
        return
    before = f"v{move.from_version}" if move.from_version else "(unset)"
    console.print(f"{name}@{alias}: {before} -> v{move.to_version}")


@alias_app.command("history")
def alias_history(
    ctx: typer.Context,
    name: str,
    alias: Annotated[str | None, typer.Argument()] = None,
    as_json: AsJson = False,
) -> None:
    """Who moved which alias, when and why."""
    moves = cli_context(ctx).yard.registry.alias_history(name, alias)
    if as_json:
        print_json(moves)
        return
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
    edge: Annotated[
        bool, typer.Option("--edge", help="An image model's folder for devices (no modelyard).")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Write a self-contained bundle (model, signature, profile, manifest with hashes)."""
    if edge:
        folder = export_edge(cli_context(ctx).yard.registry, ref, out)
        if as_json:
            print_json({"path": str(folder), "files": sorted(p.name for p in folder.iterdir())})
        else:
            console.print(f"wrote {folder} (run: python {folder}/runner.py image.png)")
        return
    path = export_bundle(cli_context(ctx).yard.registry, ref, out)
    if as_json:
        print_json({"path": str(path), "bytes": path.stat().st_size})
        return
    console.print(f"wrote {path} ({path.stat().st_size:,} bytes)")


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line and exit status 2 for a user error, never a traceback; usage
    mistakes (a missing argument, an unknown option) are typer's message and status 2."""
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="modelyard")
    except ModelyardError as error:  # raised outside a command (Commands.invoke prints the rest)
        print_error(error.message)
        sys.exit(2)
