"""What every command prints with: its consoles, times, tables, JSON and one-line errors.

Each invocation gets its own consoles (``output_options``, which the root command
enters around the command it runs), built when first printed to: so the root's
``--no-color`` reaches every table, and ``NO_COLOR`` / ``FORCE_COLOR`` are read when the
command runs, not when the module was imported; a sub-app run on its own (as tests do)
prints with the defaults. When stdout is not a terminal (a pipe, a file) tables
print at their natural width: rich would otherwise fold and cut them at 80 columns
(``2026-12…``), which breaks ``grep`` and ``awk``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, cast

import numpy as np
import typer
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.table import Table

AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON document, not tables.")]

# Wide enough for any table a command prints; rich pads nothing past a table's own width.
_UNBOUNDED = 1_000_000


class Output:
    """The consoles of one invocation: stdout for results, stderr for mistakes."""

    def __init__(self, no_color: bool = False) -> None:
        self.no_color = no_color
        self._stdout: Console | None = None
        self._stderr: Console | None = None

    def _console(self, stderr: bool) -> Console:
        stream = sys.stderr if stderr else sys.stdout
        piped = not stream.isatty()
        return Console(
            stderr=stderr,
            # None lets rich read NO_COLOR itself; True is the flag.
            no_color=True if self.no_color else None,
            width=_UNBOUNDED if piped else None,
            highlight=False,
            soft_wrap=True,
        )

    @property
    def stdout(self) -> Console:
        if self._stdout is None:
            self._stdout = self._console(stderr=False)
        return self._stdout

    @property
    def stderr(self) -> Console:
        if self._stderr is None:
            self._stderr = self._console(stderr=True)
        return self._stderr


_invocation: ContextVar[Output | None] = ContextVar("modelyard_output", default=None)


@contextmanager
def output_options(*, no_color: bool) -> Iterator[Output]:
    """The output of one invocation, for the commands run inside the block."""
    token = _invocation.set(Output(no_color=no_color))
    try:
        yield _invocation.get() or Output()
    finally:
        _invocation.reset(token)


def current_output() -> Output:
    """This invocation's ``Output``; a default one outside ``output_options``."""
    return _invocation.get() or Output()


class _CurrentConsole:
    """Forwards to the running invocation's stdout console, so that modules can keep
    ``from modelyard.cli.output import console`` and still follow ``--no-color``."""

    def __getattr__(self, name: str) -> Any:
        return getattr(current_output().stdout, name)


console = cast(Console, _CurrentConsole())


def print_error(message: str) -> None:
    """A user's mistake: one line on stderr (the caller exits with status 2)."""
    current_output().stderr.print(f"[red]error:[/red] {escape(message)}")


def print_note(message: str) -> None:
    """Why a result is empty, or what to do next: plain text on stdout."""
    current_output().stdout.print(escape(message))


def _plain(value: Any) -> Any:
    """What ``json`` cannot write by itself: dataclasses, numpy values, enums, paths."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        to_dict = getattr(value, "to_dict", None)
        return to_dict() if callable(to_dict) else dataclasses.asdict(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value)
    if isinstance(value, Path):
        return str(value)
    return str(value)


def print_json(document: Any) -> None:
    """One JSON document on stdout, unwrapped (rich would fold long lines)."""
    typer.echo(json.dumps(document, indent=2, default=_plain))


def print_json_lines(records: Iterable[Any]) -> None:
    """A stream: one compact JSON document per line."""
    for record in records:
        typer.echo(json.dumps(record, default=_plain, separators=(",", ":")))


def when(timestamp: float | None) -> str:
    """A UNIX time as ``YYYY-MM-DD HH:MM:SS`` (UTC), or ``-``."""
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    """A titled table; None cells read ``-``; markup in cells (``[x]``) is shown as is."""
    made = Table(title=escape(title), title_justify="left")
    for column in columns:
        made.add_column(escape(column))
    for row in rows:
        made.add_row(*(escape("-" if cell is None else str(cell)) for cell in row))
    return made


def print_renderable(renderable: RenderableType) -> None:
    """Print on this invocation's stdout console (full width when piped)."""
    current_output().stdout.print(renderable)


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """A titled table on stdout; None cells print as ``-``."""
    print_renderable(table(title, columns, rows))
