"""``modelyard monitor``: live metrics, drift, alert rules and HTML reports of a deployment.

Thin: every command calls ``modelyard.monitoring``. Live traffic is read by a
log reader, ``(inference log, deployment, start, end) -> Window``; ``monitor_app``
uses the inference log's, with feedback labels joined (``feedback_join.joined``),
and ``make_monitor_app`` takes another (tests pass synthetic traffic). Without one,
``metrics`` and ``check`` read the log part by part (``feedback_join.joined_parts``,
``window_figures.measure``), so their memory does not grow with the window.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any, cast

import httpx
import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from modelyard.cli.context import CliContext, cli_context
from modelyard.errors import ModelyardError, ValidationError
from modelyard.monitoring.alerts import delete_rule, load_rules, recent_alerts, save_rule
from modelyard.monitoring.drift_job import drift_history, monitor_cycle
from modelyard.monitoring.feedback_join import joined, joined_parts
from modelyard.monitoring.inference_log.repository import LabelledLogRepository
from modelyard.monitoring.live_metrics import GroupBy, snapshot
from modelyard.monitoring.report import gather_report, summary_rows, write_report
from modelyard.monitoring.repository import MonitoringRepository
from modelyard.monitoring.rules import AlertRule, Comparison
from modelyard.monitoring.webhooks import deliver_due
from modelyard.monitoring.window import Window
from modelyard.monitoring.window_figures import measure
from modelyard.serving.telemetry.logsearch import parse_time

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
# typer reads the annotations by name from this module's globals
Since = Annotated[str, typer.Option(help="From: 15m / 2h / 1d ago, ISO 8601 or epoch s.")]
Until = Annotated[str | None, typer.Option(help="Until (default now), same forms.")]
Model = Annotated[str | None, typer.Option(help="Model (default: the deployment's).")]
LogReader = Callable[[LabelledLogRepository, str, float, float], Window]
LogParts = Callable[[LabelledLogRepository, str, float, float], Iterable[Window]]


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``15m``, ``2h`` or ``1d``."""
    found = _DURATION.match(text)
    if not found:
        raise ValidationError(f"cannot read duration {text!r}: use 90s, 15m, 2h or 1d")
    return float(found.group(1)) * _UNIT_S[found.group(2)]


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _num(value: float | None, spec: str = ".3g") -> str:
    return "-" if value is None else format(value, spec)


def make_monitor_app(
    window_reader: LogReader | None = None,
    open_context: Callable[[typer.Context], CliContext] = cli_context,
    clock: Callable[[], float] = time.time,
    window_parts: LogParts = joined_parts,
) -> typer.Typer:
    """The ``monitor`` command group, reading traffic from the stores of
    ``open_context(ctx)``: whole with ``window_reader`` if given, else part by part with
    ``window_parts`` (``report`` reads whole, with ``joined`` by default)."""
    app = typer.Typer(help="Live metrics, drift, alerts and reports.", no_args_is_help=True)
    alerts_app = typer.Typer(help="Alert rules and the alerts they raised.", no_args_is_help=True)
    app.add_typer(alerts_app, name="alerts")
    console = Console(highlight=False, soft_wrap=True)

    def repository(ctx: typer.Context) -> MonitoringRepository:
        return open_context(ctx).monitoring

    def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
        out = Table(title=title, title_justify="left")
        for column in columns:
            out.add_column(column)
        for row in rows:
            out.add_row(*(escape("-" if cell is None else str(cell)) for cell in row))
        console.print(out)

    @contextmanager
    def user_errors() -> Iterator[None]:
        """One line and exit status 2 for a mistake, mounted or not."""
        try:
            yield
        except ModelyardError as error:
            Console(stderr=True).print(f"[red]error:[/red] {escape(error.message)}")
            raise typer.Exit(2) from None

    def span(since: str, until: str | None) -> tuple[float, float]:
        now = clock()
        start = parse_time(since, now)
        end = parse_time(until, now) if until else now
        if end <= start:
            raise ValidationError(f"--since must be before --until, got {since!r} .. {until!r}")
        return start, end

    @app.command()
    def report(
        ctx: typer.Context,
        deployment: str,
        out: Annotated[Path | None, typer.Option(help="HTML file to write.")] = None,
        since: Since = "24h",
        until: Until = None,
        model: Model = None,
    ) -> None:
        """Write a self-contained HTML report and print its summary."""
        with user_errors():
            start, end = span(since, until)
            cli = open_context(ctx)
            data = gather_report(
                cli.monitoring, cli.yard.registry, deployment, start, end,
                window_reader=partial(window_reader or joined, cli.inference_log), now=clock(),
                model=model, model_of=cli.model_of,
            )  # fmt: skip
            path = write_report(out or Path(f"{deployment}-report.html"), data)
        rows = summary_rows(data)
        table(
            f"{deployment}: {_when(start)} .. {_when(end)} UTC",
            list(rows[0]),
            [list(r.values()) for r in rows],
        )
        console.print(f"wrote {path} ({path.stat().st_size:,} bytes)")

    @app.command()
    def metrics(
        ctx: typer.Context,
        deployment: str,
        since: Since = "1h",
        until: Until = None,
        by: Annotated[str, typer.Option(help="Group by version or arm.")] = "version",
    ) -> None:
        """Traffic, errors, latency and live quality per version (or arm)."""
        with user_errors():
            if by not in ("version", "arm"):
                raise ValidationError(f"--by must be version or arm, got {by!r}")
            start, end = span(since, until)
            log = open_context(ctx).inference_log
            grouped: GroupBy = "arm" if by == "arm" else "version"
            if window_reader is not None:
                found = snapshot(window_reader(log, deployment, start, end), by=grouped)
            else:
                parts = window_parts(log, deployment, start, end)
                found = measure(parts, deployment, start, end, by=grouped, sample_rows=0).metrics
        rows = []
        for key, group in [*sorted(found.groups.items()), ("all", found.overall)]:
            t, q = group.traffic, group.quality
            quality = "" if q is None else ", ".join(f"{k} {v:.3g}" for k, v in q.metrics.items())
            rows.append(
                [
                    key, t.requests, t.rows, _num(t.requests_per_s),
                    _num(t.error_rate, ".2%"), _num(t.client_error_rate, ".2%"),
                    _num(t.p50_ms), _num(t.p90_ms), _num(t.p99_ms), _num(t.max_ms),
                    "-" if q is None else f"{q.labelled} ({q.coverage:.0%})", quality or "-",
                ]
            )  # fmt: skip
        columns = [by, "requests", "rows", "req/s", "5xx", "4xx", "p50 ms", "p90 ms", "p99 ms"]
        columns += ["max ms", "labelled", "quality"]
        table(f"{deployment}: {_when(start)} .. {_when(end)} UTC", columns, rows)

    @app.command()
    def drift(
        ctx: typer.Context,
        deployment: str,
        since: Since = "7d",
        limit: Annotated[int, typer.Option(min=1, help="Show the newest N checks.")] = 20,
        version: Annotated[int | None, typer.Option(help="Only this version.")] = None,
    ) -> None:
        """The stored drift checks of a deployment, newest last."""
        with user_errors():
            start = parse_time(since, clock())
            found = drift_history(repository(ctx), deployment, start, version=version, limit=limit)
        table(
            f"{deployment}: {len(found)} drift check(s)",
            ["window end", "version", "rows", "drift", "share", "drifted features", "prediction"],
            [
                [
                    _when(r.window_end), r.version, r.rows,
                    "DRIFT" if r.dataset_drift else "no", f"{r.share_drifted:.0%}",
                    ", ".join(r.report.drifted_features[:5]) or "-",
                    "-" if r.report.prediction_drift is None
                    else ("DRIFT" if r.report.prediction_drift.drifted else "no"),
                ]
                for r in found
            ],
        )  # fmt: skip

    @app.command()
    def check(
        ctx: typer.Context,
        deployment: str,
        since: Since = "1h",
        model: Model = None,
        deliver: Annotated[bool, typer.Option(help="Send due webhooks afterwards.")] = True,
    ) -> None:
        """Run one monitoring pass now: store drift checks, evaluate alert rules, send webhooks."""
        with user_errors():
            cli = open_context(ctx)
            now = clock()
            start = parse_time(since, now)
            checks = cli.monitoring
            log = cli.inference_log
            whole = None if window_reader is None else partial(window_reader, log)
            parts = None if whole is not None else partial(window_parts, log)
            result = monitor_cycle(
                checks, cli.yard.registry, deployment, start, now,
                window_reader=whole, window_parts=parts, now=now, model=model,
                model_of=cli.model_of,
            )  # fmt: skip
            if deliver:
                with httpx.Client() as client:
                    deliver_due(checks, client, now, np.random.default_rng())
        table(
            f"{deployment}: drift checks stored",
            ["version", "rows", "drift", "share", "drifted features"],
            [
                [v, r.rows, "DRIFT" if r.dataset_drift else "no", f"{r.share_drifted:.0%}",
                 ", ".join(r.report.drifted_features[:5]) or "-"]
                for v, r in sorted(result.drift.items())
            ],
        )  # fmt: skip
        for event in result.alerts:
            console.print(f"[red]alert[/red] {escape(event.alert.reason)}")
        if not result.alerts:
            console.print("no alert fired")

    @alerts_app.command("add")
    def alerts_add(
        ctx: typer.Context,
        deployment: str,
        name: str,
        metric: Annotated[str, typer.Option(help="drift_share, error_rate, p99_ms, ...")],
        threshold: Annotated[float, typer.Option()],
        comparison: Annotated[str, typer.Option(help="> >= < <=")] = ">",
        for_windows: Annotated[int, typer.Option(help="Fire after N windows in a row.")] = 1,
        cooldown: Annotated[str, typer.Option(help="Quiet time after firing.")] = "1h",
        version: Annotated[int | None, typer.Option(help="Only this version.")] = None,
        webhook: Annotated[str | None, typer.Option(help="URL to POST each alert to.")] = None,
    ) -> None:
        """Create (or replace) an alert rule of a deployment."""
        with user_errors():
            rule = AlertRule(
                deployment, name, metric, threshold, cast(Comparison, comparison),
                for_windows, parse_duration(cooldown), version, webhook,
            )  # fmt: skip
            save_rule(repository(ctx), rule, clock())
        console.print(f"rule {name!r} on {deployment}: {rule.describe()}")

    @alerts_app.command("list")
    def alerts_list(
        ctx: typer.Context, deployment: Annotated[str | None, typer.Argument()] = None
    ) -> None:
        """Alert rules, of one deployment or all."""
        with user_errors():
            found = load_rules(repository(ctx), deployment)
        table(
            f"{len(found)} alert rule(s)",
            ["deployment", "name", "rule", "for", "cooldown s", "webhook", "enabled"],
            [
                [r.deployment, r.name, r.describe(), r.for_windows, f"{r.cooldown_s:g}",
                 r.webhook_url, "yes" if r.enabled else "no"]
                for r in found
            ],
        )  # fmt: skip

    @alerts_app.command("remove")
    def alerts_remove(ctx: typer.Context, deployment: str, name: str) -> None:
        """Delete an alert rule."""
        with user_errors():
            if not delete_rule(repository(ctx), deployment, name):
                raise ValidationError(f"no alert rule {name!r} on deployment {deployment!r}")
        console.print(f"removed rule {name!r} from {deployment}")

    @alerts_app.command("history")
    def alerts_history(ctx: typer.Context, deployment: str, since: Since = "7d") -> None:
        """Alerts raised for a deployment."""
        with user_errors():
            found = recent_alerts(repository(ctx), deployment, parse_time(since, clock()))
        table(
            f"{deployment}: {len(found)} alert(s)",
            ["when", "event", "alert"],
            [[_when(a["at"]), a["id"], a["reason"]] for a in found],
        )

    return app


monitor_app = make_monitor_app()
