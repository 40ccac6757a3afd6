"""``modelyard features``: the feature store from the command line.

Thin: each command calls ``modelyard.features`` through ``cli_context(ctx)`` and prints
rich tables, or one JSON document with ``--json``. Commands are grouped by job, one
section each (definitions: ``apply``, ``list``, ``show``; online: ``get``, ``push``;
materialization: ``materialize``);
a new group goes in a
section of its own below the last, with the shared options and printers at the top.
Mounted on the main app as ``features``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import duckdb
import orjson
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from modelyard.cli.context import cli_context
from modelyard.cli.output import AsJson, console, current_output, print_json, print_table, when
from modelyard.errors import ValidationError
from modelyard.features.apply import ApplyPlan, Change
from modelyard.features.definitions import FeatureView, duration_label
from modelyard.features.loader import load_definitions
from modelyard.features.materialize import Materialized
from modelyard.features.registry import DefinitionRecord
from modelyard.features.repository import KIND_NAMES, DefinitionVersion, Kind, StoredDefinition
from modelyard.serving.telemetry.logsearch import parse_time

__all__ = ["features_app"]

features_app = typer.Typer(
    help="The feature store: definitions, materialization, online reads and pushes.",
    no_args_is_help=True,
)

# -- shared options and printers ------------------------------------------------------


def _text(value: object) -> str:
    """A table cell (``print_table`` shows markup in it, ``[x]``, as it is)."""
    return "-" if value is None else str(value)


# -- definitions: apply, list, show ---------------------------------------------------


@features_app.command("apply")
def apply_definitions(
    ctx: typer.Context,
    files: Annotated[
        list[Path], typer.Argument(help="Python file(s) defining entities, views and features.")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; write nothing.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Register the definitions of FILES and print what was added, changed and removed.

    A change that breaks a deployment using a view is refused, and nothing is written.
    """
    definitions = load_definitions(*files)
    context = cli_context(ctx)
    plan = context.feature_registry.apply(definitions, actor=context.actor, dry_run=dry_run)
    if as_json:
        print_json({"dry_run": dry_run, **plan.to_dict()})
        return
    _print_plan(plan, dry_run=dry_run)


@features_app.command("list")
def list_definitions(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Entities, feature views and on-demand features as they stand."""
    stored = cli_context(ctx).feature_registry.stored()
    by_kind: dict[Kind, list[StoredDefinition]] = {"entity": [], "view": [], "on_demand": []}
    for item in stored:
        by_kind[item.kind].append(item)
    if as_json:
        print_json({kind: [_stored_json(s) for s in items] for kind, items in by_kind.items()})
        return
    if not stored:
        console.print("no feature definitions yet: `modelyard features apply features.py`")
        return
    print_table(
        f"{len(by_kind['view'])} feature view(s)",
        ["name", "entity", "source", "features", "ttl", "online", "version", "updated"],
        [_view_row(s) for s in by_kind["view"]],
    )
    if by_kind["on_demand"]:
        print_table(
            f"{len(by_kind['on_demand'])} on-demand feature(s)",
            ["name", "dtype", "expression", "version", "updated"],
            [
                [
                    s.name,
                    s.definition["dtype"],
                    _text(s.definition["expression"]),
                    s.version,
                    when(s.updated_at),
                ]
                for s in by_kind["on_demand"]
            ],
        )
    print_table(
        f"{len(by_kind['entity'])} entit{'y' if len(by_kind['entity']) == 1 else 'ies'}",
        ["name", "key", "dtype", "version", "updated"],
        [
            [s.name, s.definition["key"], s.definition["dtype"], s.version, when(s.updated_at)]
            for s in by_kind["entity"]
        ],
    )


@features_app.command("show")
def show_definition(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A feature view (or on-demand feature, entity).")],
    as_json: AsJson = False,
) -> None:
    """One feature view: its definition, its versions and who changed what, when."""
    record = cli_context(ctx).feature_registry.record(name)
    if as_json:
        print_json(
            {
                "kind": record.kind,
                "name": record.name,
                "current": None if record.current is None else _stored_json(record.current),
                "history": [_version_json(v) for v in record.history],
            }
        )
        return
    _print_record(record)


def _print_plan(plan: ApplyPlan, *, dry_run: bool) -> None:
    if plan.added:
        print_table(
            "added",
            ["kind", "name", "definition"],
            [[KIND_NAMES[c.kind], c.name, _text(_outline(c))] for c in plan.added],
        )
    if plan.changed:
        print_table(
            "changed",
            ["kind", "name", "what changed"],
            [
                [KIND_NAMES[c.kind], c.name, "\n".join(_text(d) for d in c.differences)]
                for c in plan.changed
            ],
        )
    if plan.removed:
        print_table(
            "removed", ["kind", "name"], [[KIND_NAMES[c.kind], c.name] for c in plan.removed]
        )
    counts = (
        f"{len(plan.added)} added, {len(plan.changed)} changed, {len(plan.removed)} removed, "
        f"{len(plan.unchanged)} unchanged"
    )
    if not plan.has_changes:
        console.print(f"nothing to change: {len(plan.unchanged)} definition(s) up to date")
    elif dry_run:
        console.print(f"dry run, nothing written: {counts}")
    else:
        console.print(f"applied: {counts}")


def _outline(change: Change) -> str:
    """An added definition in a few words."""
    definition = change.definition or {}
    if change.kind == "entity":
        return f"key {definition['key']} ({definition['dtype']})"
    if change.kind == "on_demand":
        return f"{definition['expression']} ({definition['dtype']})"
    names = [f["name"] for f in definition["features"]]
    names += [a["name"] for a in definition["aggregations"]]
    return (
        f"{len(names)} feature(s) of {definition['entity']['name']} from "
        f"{_source_text(definition['source'])}: {', '.join(names)}"
    )


def _source_text(source: dict[str, Any]) -> str:
    kind = source["kind"]
    if kind == "FileSource":
        where = f"file {source['path']}"
    elif kind == "SqlSource":
        where = f"SQL {source['query']}" + (f" at {source['url']}" if source.get("url") else "")
    else:
        where = f"stream {source['name']}"
    return where


def _ttl_text(ttl: float | None) -> str:
    return "never expires" if ttl is None else duration_label(float(ttl))


def _view_row(stored: StoredDefinition) -> list[Any]:
    view = stored.definition
    names = [f["name"] for f in view["features"]] + [a["name"] for a in view["aggregations"]]
    shown = ", ".join(names[:4]) + (f" (+{len(names) - 4})" if len(names) > 4 else "")
    return [
        stored.name,
        f"{view['entity']['name']} ({view['entity']['key']})",
        _text(_source_text(view["source"])),
        shown,
        _ttl_text(view["ttl"]),
        "yes" if view["online"] else "no",
        stored.version,
        when(stored.updated_at),
    ]


def _print_record(record: DefinitionRecord) -> None:
    title = f"{KIND_NAMES[record.kind]} {record.name}"
    current = record.current
    if current is None:
        last = record.history[-1]
        console.print(f"{title} was removed {when(last.at)} by {last.actor or '-'}")
    else:
        rows: list[list[Any]] = [
            ["version", current.version],
            ["digest", current.digest],
            ["updated", f"{when(current.updated_at)} by {current.updated_by or '-'}"],
            ["defined since", when(current.created_at)],
        ]
        rows += _definition_rows(record.kind, current.definition)
        print_table(f"{title} (v{current.version})", ["field", "value"], rows)
        if record.kind == "view":
            print_table("features", ["name", "dtype", "computed as"], _feature_rows(current))
    print_table(
        "history",
        ["version", "change", "when", "by", "digest", "what changed"],
        [
            [
                f"v{v.version}",
                v.action,
                when(v.at),
                v.actor,
                (v.digest or "-")[:12],
                _text(v.summary or "-"),
            ]
            for v in record.history
        ],
    )


def _definition_rows(kind: Kind, definition: dict[str, Any]) -> list[list[Any]]:
    if kind == "entity":
        return [
            ["key", f"{definition['key']} ({definition['dtype']})"],
            ["description", _text(definition["description"] or "-")],
        ]
    if kind == "on_demand":
        return [
            ["expression", _text(definition["expression"])],
            ["dtype", definition["dtype"]],
            ["description", _text(definition["description"] or "-")],
        ]
    entity, source = definition["entity"], definition["source"]
    rows: list[list[Any]] = [
        ["entity", f"{entity['name']} (key {entity['key']}, {entity['dtype']})"],
        ["source", _text(_source_text(source))],
        ["event time", source["event_time"]],
    ]
    if source.get("created_time"):
        rows.append(["created time", source["created_time"]])
    rows += [
        ["ttl", _ttl_text(definition["ttl"])],
        ["online", "yes" if definition["online"] else "no"],
        ["description", _text(definition["description"] or "-")],
    ]
    rows += [[f"tag {k}", _text(v)] for k, v in definition["tags"].items()]
    return rows


def _feature_rows(stored: StoredDefinition) -> list[list[Any]]:
    view = FeatureView.from_dict(stored.definition)
    rows: list[list[Any]] = [[f.name, f.dtype, "column"] for f in view.features]
    for aggregation in view.aggregations:
        of = f"({aggregation.column})" if aggregation.column else ""
        rows.append(
            [
                aggregation.feature_name,
                view.dtype_of(aggregation.feature_name),
                f"{aggregation.function}{of} over {duration_label(aggregation.window_s)}",
            ]
        )
    return rows


def _stored_json(stored: StoredDefinition) -> dict[str, Any]:
    return {
        "kind": stored.kind,
        "name": stored.name,
        "version": stored.version,
        "digest": stored.digest,
        "created_at": stored.created_at,
        "updated_at": stored.updated_at,
        "updated_by": stored.updated_by,
        "definition": stored.definition,
    }


def _version_json(version: DefinitionVersion) -> dict[str, Any]:
    return {
        "version": version.version,
        "action": version.action,
        "at": version.at,
        "actor": version.actor,
        "digest": version.digest,
        "summary": version.summary,
        "definition": version.definition,
    }


# -- online: get, push ----------------------------------------------------------------


@features_app.command("get")
def get_features(
    ctx: typer.Context,
    features: Annotated[list[str], typer.Argument(help="Features as view:feature.")],
    entity: Annotated[
        list[str], typer.Option("--entity", "-e", help="An entity key (repeatable).")
    ],
    at: Annotated[
        str | None, typer.Option(help="As of: ISO 8601, epoch seconds or 15m ago (default now).")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """The features of some entities from the online store, as serving reads them."""
    moment = None if at is None else parse_time(at, time.time())
    found = cli_context(ctx).features.get_online_features(entity, features, at=moment)
    names = list(found.columns)
    if as_json:
        print_json(
            [
                {"entity": key, "found": ok, **{n: found.columns[n][i] for n in names}}
                for i, (key, ok) in enumerate(zip(entity, found.all_found, strict=True))
            ]
        )
        return
    print_table(
        f"{len(entity)} entit{'y' if len(entity) == 1 else 'ies'}, {len(names)} feature(s)",
        ["entity", "found", *names],
        [
            [_text(key), "yes" if ok else "no", *(_text(found.columns[n][i]) for n in names)]
            for i, (key, ok) in enumerate(zip(entity, found.all_found, strict=True))
        ],
    )


@features_app.command("push")
def push_events(
    ctx: typer.Context,
    stream: Annotated[str, typer.Argument(help="The stream the events belong to.")],
    file: Annotated[Path, typer.Argument(help="Events: JSON lines, a JSON list, CSV or Parquet.")],
    as_json: AsJson = False,
) -> None:
    """Push events to a stream: applied offline and online once per event id."""
    result = cli_context(ctx).features.push(stream, read_events(file))
    if as_json:
        print_json(result.to_dict())
        return
    rows: list[list[Any]] = [
        ["accepted", result.accepted],
        ["duplicates (already stored)", len(result.duplicates)],
        ["too late (not applied)", len(result.too_late)],
    ]
    rows += [
        [f"too late: {late.event_id}", f"{late.key} at {when(late.event_time)}"]
        for late in result.too_late[:20]
    ]
    print_table(f"push to {stream}", ["", "events"], rows)


def read_events(path: Path) -> Any:
    """The events in ``path``: a list of objects (JSON lines or a JSON list), or columns
    (CSV and Parquet, read by DuckDB with their types)."""
    if not path.is_file():
        raise ValidationError(f"no events file at {path}")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        lines = path.read_bytes().splitlines()
        try:
            return [orjson.loads(line) for line in lines if line.strip()]
        except orjson.JSONDecodeError as error:
            raise ValidationError(f"{path} is not JSON lines: {error}") from None
    if suffix == ".json":
        try:
            document = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as error:
            raise ValidationError(f"{path} is not JSON: {error}") from None
        if not isinstance(document, list):
            raise ValidationError(f"{path} must hold a JSON list of events")
        return document
    reader = {".csv": "read_csv", ".parquet": "read_parquet"}.get(suffix)
    if reader is None:
        raise ValidationError(
            f"cannot read events from {path.name}: use .jsonl, .json, .csv or .parquet"
        )
    with duckdb.connect() as conn:
        columns = conn.execute(f"SELECT * FROM {reader}(?)", [str(path)]).fetchnumpy()
    return {name: values.tolist() for name, values in columns.items()}


# -- materialization: materialize -----------------------------------------------------


@features_app.command("materialize")
def materialize_views(
    ctx: typer.Context,
    view: Annotated[
        list[str] | None, typer.Option("--view", help="Only this view (repeatable).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Rows with event time from this (ISO 8601, epoch seconds or 15m ago); "
            "without it, what arrived since each view's watermark."
        ),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Rows with event time up to this (default now).")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Write the online views from their sources, as the server does every
    features.materialize_interval_s; without --since, incrementally from the watermark."""
    now = time.time()
    end = now if until is None else parse_time(until, now)
    store = cli_context(ctx).features
    # On stderr, so that --json's document is the only thing on stdout.
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=current_output().stderr,
    ) as bar:
        tasks: dict[str, Any] = {}

        def progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done, total=total)

        if since is None:
            done = store.materialize_incremental(end, views=view, progress=progress)
        else:
            done = store.materialize(parse_time(since, now), end, views=view, progress=progress)
    if as_json:
        print_json([vars(one) for one in done])
        return
    print_table(
        f"materialized up to {when(end)}"
        + (" (incremental)" if since is None else f" from {when(parse_time(since, now))}"),
        ["view", "latest rows", "written", "events", "added", "trimmed", "watermark"],
        [_materialized_row(one) for one in done],
    )


def _materialized_row(done: Materialized) -> list[Any]:
    return [
        _text(done.view),
        done.latest_rows,
        done.latest_written,
        done.events,
        done.events_added,
        done.events_trimmed,
        when(done.watermark),
    ]
