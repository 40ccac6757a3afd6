"""``modelyard demo``: the fraud pipeline end to end, and the quickstart."""

from __future__ import annotations

import dataclasses
import threading
import webbrowser
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from modelyard.cli.context import cli_context
from modelyard.cli.output import console, current_output, print_json, print_table

demo_app = typer.Typer(
    help="Demos that run on this machine, nothing else needed.", no_args_is_help=True
)


@demo_app.command("fraud")
def fraud(
    fast: Annotated[
        bool, typer.Option("--fast", help="The short scenario (under two minutes, for CI).")
    ] = False,
    out: Annotated[
        Path, typer.Option(help="Folder for the demo's home and report (replaced each run).")
    ] = Path("fraud-demo"),
    price_per_hour: Annotated[
        float | None,
        typer.Option(min=0.0, help="What the machine costs per hour, for the cost per prediction."),
    ] = None,
    open_report: Annotated[
        bool, typer.Option("--open", help="Open the report in a browser at the end.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report's figures as JSON at the end.")
    ] = False,
) -> None:
    """Real-time fraud detection end to end: simulated card traffic, features, a served
    model, a drift, a retrain promoted by canary, a broken model rolled back, a report."""
    # LightGBM, scikit-learn and the simulator are the demo's alone to import.
    from modelyard.demos.fraud.demo import run_demo
    from modelyard.demos.fraud.report import portfolio_rows
    from modelyard.demos.fraud.scenario import DEFAULT, FAST
    from modelyard.demos.fraud.view import DemoView

    scenario = FAST if fast else DEFAULT
    if price_per_hour is not None:
        scenario = dataclasses.replace(scenario, price_per_hour=price_per_hour)
    stop = threading.Event()
    try:
        with DemoView(current_output().stdout) as view:
            result = run_demo(out, scenario, stop=stop, show=view.show)
    except KeyboardInterrupt:
        _stopped(out / "home")
        raise typer.Exit(130) from None
    record = result.record
    if result.interrupted:
        _stopped(result.home, result.report_markdown)
        raise typer.Exit(130)
    if as_json:
        print_json(record.to_dict())
        return
    print_table("portfolio", ["", ""], [list(row) for row in portfolio_rows(record)])
    print_table(
        "what happened",
        ["at", "event", "what"],
        [[f"+{r['offset_s']:.0f} s", r["kind"], r["text"]] for r in record.story],
    )
    missing = [act.replace("_", " ") for act, done in record.acts.items() if not done]
    if missing:
        console.print(f"[yellow]the story stopped short:[/yellow] no {', '.join(missing)}")
    console.print(f"report: {result.report_markdown} and {result.report_html}")
    console.print(
        f"look around: export MODELYARD_HOME={result.home}; then modelyard history fraud, "
        "deployments, versions fraud, monitor drift fraud, monitor alerts history fraud"
    )
    if open_report:
        webbrowser.open(result.report_html.resolve().as_uri())
    if missing:
        raise typer.Exit(1)


def _stopped(home: Path, report: Path | None = None) -> None:
    done = f" The report of what ran: {report}." if report else ""
    console.print(
        f"stopped: the server, the worker and the traffic are down.{done} The home is "
        f"readable: MODELYARD_HOME={home} modelyard history fraud"
    )


@demo_app.command("quickstart")
def quickstart(
    ctx: typer.Context,
    rows: Annotated[int, typer.Option(min=1000, help="Rows of generated training data.")] = 20_000,
) -> None:
    """Train, track, register, load in a new process, predict (in the home)."""
    # scikit-learn costs ~1.5 s to import: only the demo pays for it.
    from modelyard.demos.quickstart import run_quickstart

    run_quickstart(cli_context(ctx).yard, rows=rows, console=current_output().stdout)


@demo_app.command("vision")
def vision(
    fast: Annotated[bool, typer.Option("--fast", help="16x16 digits, a smaller CNN.")] = False,
    tiny: Annotated[
        bool, typer.Option("--tiny", help="12x12 digits, short timings (a smoke test).")
    ] = False,
    out: Annotated[
        Path, typer.Option(help="Folder for the demo's home and edge bundle (replaced each run).")
    ] = Path("vision-demo"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the table as JSON.")] = False,
) -> None:
    """An image classifier for devices: train, prune, quantize (accuracy-gated), compare,
    serve, canary, export the edge bundle."""
    from modelyard.demos.vision import run_vision_demo  # torch: the demo's alone to import

    say = (lambda line: None) if as_json else console.print
    result = run_vision_demo(out, fast=fast, tiny=tiny, say=say)
    if as_json:
        print_json({"rows": result.rows, "story": result.story, "edge": str(result.edge)})
        return
    columns = list(result.rows[0])
    print_table("versions on this CPU", columns, [[r[c] for c in columns] for r in result.rows])
    console.print(f"look around: export MODELYARD_HOME={result.home}; modelyard versions digits")


@demo_app.command("recommender")
def recommender(
    fast: Annotated[bool, typer.Option("--fast", help="A smaller world (about a minute).")] = False,
    out: Annotated[
        Path, typer.Option(help="Folder for the demo's home and report (replaced each run).")
    ] = Path("recommender-demo"),
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the offline figures and each A/B test as JSON.")
    ] = False,
    smoke: Annotated[
        bool, typer.Option("--smoke", help="The smallest world, for tests.", hidden=True)
    ] = False,
) -> None:
    """A recommendation service: popularity against matrix factorisation on simulated users,
    served, A/B tested on clicks, retrained once on what it served; a report."""
    from modelyard.demos.recommender.demo import FAST, SMOKE, Scenario, run_demo
    from modelyard.demos.recommender.report import write_report

    say = (lambda line: None) if as_json else console.print
    scenario = SMOKE if smoke else FAST if fast else Scenario()
    result = run_demo(out, scenario, show=say)
    markdown, page = write_report(result, out)
    if as_json:
        print_json(
            {
                "offline": {name: asdict(q) for name, q in result.offline.items()},
                "ab_tests": [_ab_test(phase) for phase in result.phases],
                "report": str(markdown),
                "page": str(page),
            }
        )
        return
    console.print(f"report: {markdown} and {page}")


def _ab_test(phase: Any) -> dict[str, Any]:
    """One A/B test of the recommender demo: its arms, its last look, what was promoted."""
    last = phase.looks[-1] if phase.looks else None
    look = (
        {
            "verdict": last.verdict.value,
            "winner": last.winner,
            "effect": last.effect,
            "ci": [last.ci_low, last.ci_high],
            "may_stop": last.may_stop,
            "reason": last.reason,
        }
        if last
        else None
    )
    return {
        "title": phase.title,
        "control": phase.control,
        "treatment": phase.treatment,
        "days": len(phase.days),
        "last_look": look,
        "promoted": phase.promoted,
    }
