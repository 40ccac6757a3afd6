"""``modelyard serve``: run the prediction server (a thin wrapper over ``serving.serve``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelyard.cli.context import cli_context
from modelyard.config import override
from modelyard.serving import serve as run_server


def serve(
    ctx: typer.Context,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="Reference to serve: name (latest), name@alias or name/3. Repeatable. "
            "Default: every registered model at its champion alias, else its latest version.",
        ),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="TCP port.")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes (one per core is right).")
    ] = None,
    max_batch_size: Annotated[
        int | None, typer.Option(min=1, help="Most rows merged into one model call.")
    ] = None,
    max_batch_wait_us: Annotated[
        int | None,
        typer.Option(min=0, help="Longest a request waits for others to batch with (us)."),
    ] = None,
    request_timeout_s: Annotated[
        float | None, typer.Option(min=0.001, help="Per-request deadline (answered 504 after).")
    ] = None,
    log_path: Annotated[
        Path | None, typer.Option(help="JSON-lines log file (default <home>/logs/serving.jsonl).")
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            help="builtin (worker processes here) or ray (Ray Serve replicas; "
            "pip install 'modelyard[ray]')."
        ),
    ] = None,
    trusted: Annotated[
        bool,
        typer.Option(
            help="Allow pickle-based versions (they run code when loaded), and only those "
            "marked trusted when registered (register_model(..., trusted=True))."
        ),
    ] = False,
    insecure: Annotated[
        bool,
        typer.Option(
            help="Allow a host other than loopback without a token (anyone who can reach "
            "the port can call the models)."
        ),
    ] = False,
) -> None:
    """Serve models over HTTP: Open Inference Protocol (KServe V2) and JSON records."""
    overrides = {
        "host": host,
        "port": port,
        "workers": workers,
        "max_batch_size": max_batch_size,
        "max_batch_wait_us": max_batch_wait_us,
        "request_timeout_s": request_timeout_s,
        "log_path": log_path,
        "backend": backend,
    }
    given = {k: v for k, v in overrides.items() if v is not None}
    settings = override(cli_context(ctx).settings, serving=given)
    status = run_server(settings, model or [], trusted=trusted, insecure=insecure)
    if status:
        raise typer.Exit(status)
