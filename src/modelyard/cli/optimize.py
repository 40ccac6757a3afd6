"""``modelyard optimize train|prune|quantize|compare``: image models made smaller and
faster, each candidate gated on accuracy against its parent (``modelyard.optimize``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelyard.cli.context import cli_context
from modelyard.cli.output import AsJson, print_json, print_note, print_table
from modelyard.errors import UnsupportedModelError
from modelyard.optimize import Figures, OptimizePolicy, comparison_rows
from modelyard.routing.sql import SqlDeploymentRepository

if TYPE_CHECKING:
    from modelyard.optimize.optimizer import Optimizer, Outcome

__all__ = ["optimize_app"]

optimize_app = typer.Typer(
    help="Prune and quantize image models, gated on accuracy.", no_args_is_help=True
)

MaxDrop = Annotated[float, typer.Option(help="Largest accuracy drop allowed overall, in points.")]
MaxClassDrop = Annotated[
    float, typer.Option(help="Largest accuracy drop allowed on any class, in points.")
]
Goal = Annotated[str, typer.Option(help="smaller, faster, either or both.")]
Data = Annotated[
    Path | None,
    typer.Option(
        help="Your labelled images instead of the digits: an .npz (images, labels) or a "
        "folder of class-named subfolders of PNG/JPEG files.",
    ),
]


def _optimizer(ctx: typer.Context, policy: OptimizePolicy | None = None) -> Optimizer:
    try:  # torch: the `vision` extra, imported by these commands only
        from modelyard.optimize.optimizer import Optimizer
    except ImportError as error:
        raise UnsupportedModelError(
            f"modelyard optimize needs torch and scikit-learn ({error.name} is missing): "
            "pip install 'modelyard[vision]'"
        ) from None
    context = cli_context(ctx)
    yard = context.yard
    return Optimizer(
        yard.registry,
        yard.artifacts,
        SqlDeploymentRepository(yard.db),
        policy=policy or OptimizePolicy(),
        actor=context.settings.user,
    )


@optimize_app.command("train")
def train(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model to register the trained CNN under.")],
    size: Annotated[int, typer.Option(min=8, help="Input height and width (pixels).")] = 32,
    epochs: Annotated[int, typer.Option(min=1)] = 6,
    data: Data = None,
    as_json: AsJson = False,
) -> None:
    """Train the CNN on scikit-learn's digits (or --data) and register it as ONNX."""
    optimizer = _optimizer(ctx)
    from modelyard.optimize.cnn import CnnConfig  # loaded by _optimizer (torch)

    version = optimizer.train_digits(name, CnnConfig(size=size, epochs=epochs), data)
    if as_json:
        print_json({"model": version.model, "version": version.version, **version.metrics})
        return
    print_note(
        f"registered {version.model}/{version.version}: accuracy "
        f"{version.metrics['accuracy']:.2%} on held-out {'digits' if data is None else 'images'}"
    )


@optimize_app.command("quantize")
def quantize(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="name/3 or name@alias")],
    max_drop: MaxDrop = 1.0,
    max_class_drop: MaxClassDrop = 3.0,
    goal: Goal = "either",
    data: Data = None,
    as_json: AsJson = False,
) -> None:
    """int8, dynamic and static (QDQ), per-channel and per-tensor; the best candidate
    that passes the gate becomes the next version."""
    policy = OptimizePolicy(max_drop, max_class_drop, goal)  # type: ignore[arg-type]
    _show(_optimizer(ctx, policy).quantize(ref, data=data), as_json)


@optimize_app.command("prune")
def prune(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="name/3 or name@alias (a float version)")],
    fraction: Annotated[float, typer.Option(help="Share of channels removed.")] = 0.5,
    epochs: Annotated[int, typer.Option(min=0, help="Fine-tuning epochs.")] = 3,
    max_drop: MaxDrop = 1.0,
    max_class_drop: MaxClassDrop = 3.0,
    goal: Goal = "either",
    data: Data = None,
    as_json: AsJson = False,
) -> None:
    """Structured pruning: remove whole channels, fine-tune, gate, register."""
    policy = OptimizePolicy(max_drop, max_class_drop, goal)  # type: ignore[arg-type]
    _show(_optimizer(ctx, policy).prune(ref, fraction, epochs, data=data), as_json)


@optimize_app.command("compare")
def compare(
    ctx: typer.Context,
    refs: Annotated[list[str], typer.Argument(help="Versions to measure: name/1 name/2 ...")],
    data: Data = None,
    as_json: AsJson = False,
) -> None:
    """Measure versions now, on this CPU, side by side."""
    optimizer = _optimizer(ctx)
    measured = [optimizer.figures(ref, data) for ref in refs]
    rows = comparison_rows([(f"{v.model}/{v.version}", v.tags.get("optimize.method", "-"), f)
                            for v, f in measured])  # fmt: skip
    if as_json:
        print_json(rows)
        return
    _table("versions on this CPU", rows)


def _show(outcome: Outcome, as_json: bool) -> None:
    parent = f"{outcome.parent.model}/{outcome.parent.version}"
    entries: list[tuple[str, str, Figures]] = [(parent, "parent", outcome.parent_figures)]
    entries += [("candidate", c.method, c.figures) for c in outcome.candidates]
    rows = comparison_rows(entries)
    for row, candidate in zip(rows[1:], outcome.candidates, strict=True):
        row["verdict"] = candidate.verdict.reason
    registered = outcome.registered
    if as_json:
        print_json({
            "parent": parent,
            "rows": rows,
            "registered": None if registered is None else registered.version,
            "verdicts": [c.verdict.to_dict() for c in outcome.candidates],
        })  # fmt: skip
        return
    _table(f"candidates from {parent}", rows)
    if registered is None:
        print_note("no candidate passed the gate; each refusal is an optimize.rejected event")
    else:
        print_note(
            f"registered {registered.model}/{registered.version} "
            f"({registered.tags.get('optimize.method')}, parent {parent})"
        )


def _table(title: str, rows: list[dict[str, Any]]) -> None:
    columns = list(rows[0]) if rows else []
    print_table(title, columns, [[row.get(c) for c in columns] for row in rows])
