"""``modelyard requests DEPLOYMENT``: what the inference log holds, from the outside.

Lists logged requests newest first with filters, or shows one (``--show ID``) with its
inputs, fetched features, outputs, latency, status and labels. A thin wrapper over
``Yard.requests`` / ``Yard.request`` (``monitoring.inference_log.browse``).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from modelyard.cli.context import cli_context
from modelyard.cli.output import AsJson, console, print_json, when
from modelyard.errors import ValidationError
from modelyard.monitoring.inference_log.browse import MAX_LIMIT, RequestDetail
from modelyard.serving.telemetry.logsearch import parse_time


def requests(
    ctx: typer.Context,
    deployment: Annotated[str, typer.Argument(help="Deployment (or model name served alone).")],
    show: Annotated[
        str | None, typer.Option("--show", help="Show this request id in full instead.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="From: ISO 8601 (UTC), epoch seconds, or 15m / 2h / 1d ago.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Until (exclusive), as --since.")] = None,
    version: Annotated[int | None, typer.Option(help="Only this model version.")] = None,
    arm: Annotated[
        str | None,
        typer.Option(
            help="Only this arm: champion, canary, shadow, an A/B arm (no deployment: primary)."
        ),
    ] = None,
    status: Annotated[
        str | None, typer.Option(help="An HTTP status (200, 422), or ok (< 400) / error.")
    ] = None,
    labelled: Annotated[
        bool | None,
        typer.Option(
            "--labelled/--unlabelled", help="Only requests with a label for some row, or none."
        ),
    ] = None,
    request_id: Annotated[
        str | None, typer.Option("--request-id", help="Only ids starting with this.")
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=MAX_LIMIT, help="Show the newest N matches.")
    ] = 50,
    as_json: AsJson = False,
) -> None:
    """Logged requests of a deployment, newest first; or one in full with --show."""
    yard = cli_context(ctx).yard
    if show is not None:
        _show(yard.request(deployment, show), as_json)
        return
    now = time.time()
    found = yard.requests(
        deployment,
        since=parse_time(since, now) if since else None,
        until=parse_time(until, now) if until else None,
        version=version,
        arm=arm,
        status=_status(status),
        labelled=labelled,
        request_id_prefix=request_id,
        limit=limit,
    )
    if as_json:
        print_json([record.document() for record in found])
        return
    if not found:
        console.print(f"no logged requests of {deployment!r} match (the log runs ~1 s behind)")
        return
    print_table(
        f"{deployment}: {len(found)} logged request(s), newest first",
        ["time (UTC)", "request id", "version", "arm", "status", "latency ms", "rows", "labels"],
        [
            [
                when(r.ts),
                r.request_id,
                r.version,
                r.arm,
                r.status if r.error is None else f"{r.status} {r.error}",
                f"{r.latency_ms:.2f}",
                r.rows,
                _labels(r.labels),
            ]
            for r in found
        ],
    )


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """A titled table, never cut: request ids and errors stay whole when piped."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("-" if cell is None else escape(str(cell)) for cell in row))
    wide = console if console.is_terminal else Console(width=100_000, highlight=False)
    wide.print(table)


def _status(text: str | None) -> int | str | None:
    if text is None or text in ("ok", "error"):
        return text
    if text.isdigit():
        return int(text)
    raise ValidationError(f"--status must be an HTTP status code, ok or error, got {text!r}")


def _labels(labels: dict[int, Any]) -> str | None:
    if not labels:
        return None
    return ", ".join(f"{row}: {orjson.dumps(label).decode()}" for row, label in labels.items())


def _show(details: list[RequestDetail], as_json: bool) -> None:
    if as_json:
        print_json([detail.document() for detail in details])
        return
    for detail in details:
        r = detail.request
        print_table(
            f"request {r.request_id}",
            ["field", "value"],
            [
                ["time (UTC)", when(r.ts)],
                ["deployment", r.deployment],
                ["model", f"{r.model}/{r.version}"],
                ["arm", r.arm],
                ["status", r.status],
                ["error", r.error],
                ["latency ms", f"{r.latency_ms:.2f}"],
                ["rows", r.rows],
                ["labels", _labels(r.labels)],
            ],
        )
        for title, columns in (
            ("inputs", detail.inputs),
            ("features (fetched)", detail.features),
            ("outputs", detail.outputs),
        ):
            if columns:
                _rows_table(title, columns)


def _rows_table(title: str, columns: dict[str, list[Any]]) -> None:
    count = max(len(values) for values in columns.values())
    print_table(
        title,
        ["row", *columns],
        [[row, *(_cell(values, row) for values in columns.values())] for row in range(count)],
    )


def _cell(values: list[Any], row: int) -> Any:
    if row >= len(values):
        return None
    value = values[row]
    return orjson.dumps(value).decode() if isinstance(value, list | dict) else value
