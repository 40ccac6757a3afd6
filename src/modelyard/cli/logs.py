"""``modelyard logs``: search the server's JSON logs (by request id, status, model, time).

A thin wrapper over ``modelyard.serving.telemetry.logsearch``, across the log's rotated
files (``logfiles``), with ``--request-id`` through the index (``logindex``); ``--stats`` groups the
matches by model, version, status and error code with their latencies, which is
usually the quickest way from "something is wrong" to "this version, this error".
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from modelyard.cli.context import cli_context
from modelyard.cli.output import current_output
from modelyard.errors import NotFoundError
from modelyard.serving.telemetry.logfiles import log_files
from modelyard.serving.telemetry.logindex import search_log
from modelyard.serving.telemetry.logsearch import (
    LogQuery,
    format_record,
    parse_time,
    summarize,
)


def logs(
    ctx: typer.Context,
    request_id: Annotated[
        str | None, typer.Option("--request-id", "-r", help="One request (x-request-id or id).")
    ] = None,
    status: Annotated[
        str | None, typer.Option(help="503, 5xx, >=400, <300, or a comma list of those.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name, or name/version.")] = None,
    since: Annotated[
        str | None, typer.Option(help="From: ISO 8601 (UTC), epoch seconds, or 15m / 2h / 1d ago.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Until, in the same forms as --since.")] = None,
    code: Annotated[
        str | None, typer.Option(help="Error code, e.g. invalid_input, overloaded.")
    ] = None,
    event: Annotated[
        str | None, typer.Option(help="Event kind: request, model_loaded, model_swapped, ...")
    ] = None,
    grep: Annotated[str | None, typer.Option(help="Text the error message contains.")] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            help="Log file (default: the server's, from the settings); its rotated "
            "segments are read too."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show the last N matches.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print matching lines as JSON.")] = False,
    stats: Annotated[
        bool, typer.Option(help="Count matches by model, version, status and code instead.")
    ] = False,
) -> None:
    """Search the serving logs: by request id, status, model, time or error."""
    if model is not None and file is None:  # another home's log may name other models
        cli_context(ctx).log_subject(model)
    settings = cli_context(ctx).settings
    path = Path(file) if file is not None else Path(settings.resolved_log_path)
    if not log_files(path):
        raise NotFoundError(
            f"no log file at {path}; pass --file, or check serving.log_path in the settings"
        )
    now = time.time()
    query = LogQuery(
        request_id=request_id,
        status=status,
        model=model,
        since=parse_time(since, now) if since else None,
        until=parse_time(until, now) if until else None,
        code=code,
        event=event,
        text=grep,
    )
    console = current_output().stdout  # full width when piped, --no-color
    found = search_log(path, query, None if stats else limit)
    if stats:
        table = Table(title=f"{len(found)} matching line(s) in {path}", title_justify="left")
        for column in ("model", "version", "status", "code", "count", "p50 ms", "p99 ms"):
            table.add_column(column)
        for row in summarize(found):
            table.add_row(
                row["model"],
                row["version"],
                str(row["status"]),
                row["code"] or "-",
                str(row["count"]),
                f"{row['p50_ms']:.2f}",
                f"{row['p99_ms']:.2f}",
            )
        console.print(table)
        return
    for record in found:
        if as_json:
            console.print(escape(orjson.dumps(record).decode()))
        else:
            console.print(escape(format_record(record)))
    if not found and not as_json:
        console.print("no matching log lines")
