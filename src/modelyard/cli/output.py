"""What every command prints with: the console, times, and tables."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

console = Console()

AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON document, not tables.")]


def print_json(document: Any) -> None:
    """One JSON document on stdout, unwrapped (rich would fold long lines)."""
    typer.echo(json.dumps(document, indent=2, default=str))


def when(timestamp: float | None) -> str:
    """A UNIX time as ``YYYY-MM-DD HH:MM:SS`` (UTC), or ``-``."""
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """A titled table; None cells print as ``-``."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("-" if cell is None else str(cell) for cell in row))
    console.print(table)
