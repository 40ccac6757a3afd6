"""``modelyard ui``: the dashboard alone, without serving models (``serve`` has it under /ui)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
import uvicorn

from modelyard.cli.context import cli_context
from modelyard.config import override
from modelyard.serving.process.launch import check_exposure


def ui(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8501,
    insecure: Annotated[
        bool,
        typer.Option(
            help="Allow a host other than loopback without a token (anyone who can reach "
            "the port could change rollouts and aliases)."
        ),
    ] = False,
) -> None:
    """Open the dashboard: models, deployments, rollouts, drift, logged requests and runs."""
    settings = cli_context(ctx).settings
    if host is not None:
        settings = override(settings, serving={"host": host})
    warning = check_exposure(settings.serving, insecure=insecure)
    if warning:
        sys.stderr.write(warning)
    shown = settings.serving.host
    sys.stderr.write(f"modelyard: the dashboard is at http://{shown}:{port}/ui/ (Ctrl-C stops)\n")
    from modelyard.ui import create_app  # here: other commands need not import Starlette

    uvicorn.run(create_app(settings), host=settings.serving.host, port=port, log_level="warning")
