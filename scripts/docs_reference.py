"""MkDocs hook: the reference pages generated from the code itself.

``<!-- reference:cli -->`` in a page becomes the reference of every ``modelyard`` command,
walked from the typer app's click tree (usage, arguments, options, defaults, help), and
``<!-- reference:settings -->`` the table of every setting, walked from the ``Settings``
dataclasses (environment variable, TOML key, default, the field's ``help``). Generated at
build time, so the pages cannot drift from the commands and settings they describe.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from modelyard.cli.main import app
from modelyard.config.settings import ENV_PREFIX, Settings

CLI_MARKER = "<!-- reference:cli -->"
SETTINGS_MARKER = "<!-- reference:settings -->"


def on_page_markdown(markdown: str, **_: Any) -> str:
    """MkDocs event: expand the markers of a page."""
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    if SETTINGS_MARKER in markdown:
        markdown = markdown.replace(SETTINGS_MARKER, settings_reference())
    return markdown


def _prose(text: str) -> str:
    """``<home>`` and the like shown as written: escaped outside code spans (where Markdown
    would take them for HTML tags), left alone inside them."""
    pieces = text.split("`")
    return "`".join(p if i % 2 else html.escape(p, quote=False) for i, p in enumerate(pieces))


def _cell(text: object) -> str:
    """Text made safe for one Markdown table cell."""
    return _prose(" ".join(str(text).split())).replace("|", "\\|")


# Typer carries its own copy of click (typer._click), so the tree is walked by what the
# objects do (list_commands, param_type_name), not by isinstance against the click package.
Command = Any
Context = Any


def _root() -> tuple[Command, Context]:
    root = typer.main.get_command(app)
    return root, root.context_class(root, info_name="modelyard")


def walk_commands(command: Command, ctx: Context) -> Iterator[tuple[Command, Context]]:
    """Every command under ``command`` (itself first), depth first, in the order listed."""
    yield command, ctx
    if hasattr(command, "list_commands"):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from walk_commands(sub, sub.context_class(sub, info_name=name, parent=ctx))


def command_paths() -> list[str]:
    """``modelyard runs list`` and so on: the full name of every command."""
    return [ctx.command_path for _, ctx in walk_commands(*_root())]


def _param_rows(command: Command, ctx: Context) -> list[str]:
    """One row per argument and option, as ``--help`` words it (defaults and ranges included)."""
    rows = []
    for param in command.get_params(ctx):
        if param.hidden or param.name == "help":
            continue
        record = param.get_help_record(ctx)
        if record is None:
            continue
        name, help_text = record
        rows.append(f"| `{name}` | {_cell(help_text)} |")
    return rows


def cli_reference() -> str:
    """Markdown for every command: a heading, its help, its usage and its parameters."""
    parts = []
    for command, ctx in walk_commands(*_root()):
        depth = min(ctx.command_path.count(" ") + 1, 4)
        parts.append(f"{'#' * (depth + 1)} `{ctx.command_path}`\n")
        if command.help:
            parts.append(_prose(command.help.replace("\b\n", "")) + "\n")
        usage = " ".join(command.collect_usage_pieces(ctx))
        parts.append(f"```text\n{ctx.command_path} {usage}\n```\n")
        rows = _param_rows(command, ctx)
        if rows:
            parts.append("| parameter | description |\n|---|---|")
            parts.append("\n".join(rows) + "\n")
    return "\n".join(parts)


def _setting_rows(cls: type[Any], path: tuple[str, ...]) -> Iterator[tuple[str, str, str, str]]:
    for spec in dataclasses.fields(cls):
        default = spec.default_factory() if callable(spec.default_factory) else spec.default
        if dataclasses.is_dataclass(default):
            yield from _setting_rows(type(default), (*path, spec.name))
            continue
        env = ENV_PREFIX + "__".join([*path, spec.name]).upper()
        toml = ".".join([*path, spec.name])
        yield env, toml, _setting_default(default), spec.metadata.get("help", "")


def _setting_default(value: object) -> str:
    if value is None:
        return "none"
    if value == ():
        return "empty"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, Path):
        return f"`{value}`"
    return f"`{value!r}`"


def settings_rows() -> list[tuple[str, str, str, str]]:
    """(environment variable, TOML key, default, description) of every setting."""
    return list(_setting_rows(Settings, ()))


def settings_reference() -> str:
    """Markdown: one table per section of ``Settings``."""
    lines = ["| environment variable | `modelyard.toml` key | default | description |"]
    lines.append("|---|---|---|---|")
    for env, toml, default, help_text in settings_rows():
        lines.append(f"| `{env}` | `{toml}` | {default} | {_cell(help_text)} |")
    return "\n".join(lines) + "\n"
