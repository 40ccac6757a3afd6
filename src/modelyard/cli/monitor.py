"""``modelyard monitor``: live metrics, drift, alert rules and HTML reports of a deployment.

Thin: every command calls ``modelyard.monitoring``. Live traffic is read by a
log reader, ``(inference log, deployment, start, end) -> Window``; ``monitor_app``
uses the inference log's, with feedback labels joined (``feedback_join.joined``),
and ``make_monitor_app`` takes another (tests pass synthetic traffic). Without one,
``metrics`` and ``check`` read the log part by part (``feedback_join.joined_parts``,
``window_figures.measure``), so their memory does not grow with the window.

Every command takes ``--json``. An unknown deployment (no record, no logged traffic) is
one line on stderr and exit status 2 (``CliContext.deployment_model``); an empty result
says why (no traffic yet, the window empty, too few rows to check).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Any, cast

import httpx
import numpy as np
import typer

from modelyard.cli.context import CliContext, cli_context
from modelyard.cli.drift_tables import (
    check_top,
    drifted_json,
    drifted_text,
    not_checked_reason,
)
from modelyard.cli.output import AsJson, print_error, print_json, print_note, print_table, when
from modelyard.errors import ModelyardError, ValidationError
from modelyard.monitoring.alerts import delete_rule, load_rules, recent_alerts, save_rule
from modelyard.monitoring.drift_job import MIN_DRIFT_ROWS, drift_history, monitor_cycle
from modelyard.monitoring.feedback_join import joined, joined_parts
from modelyard.monitoring.inference_log.repository import LabelledLogRepository
from modelyard.monitoring.live_metrics import GroupBy, snapshot
from modelyard.monitoring.report import gather_report, summary_rows, write_report
from modelyard.monitoring.repository import DriftResult, MonitoringRepository
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
Top = Annotated[
    int | None,
    typer.Option(help="Show the N strongest drifted features of each check (default: all)."),
]
LogReader = Callable[[LabelledLogRepository, str, float, float], Window]
LogParts = Callable[[LabelledLogRepository, str, float, float], Iterable[Window]]


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``15m``, ``2h`` or ``1d``."""
    found = _DURATION.match(text)
    if not found:
        raise ValidationError(f"cannot read duration {text!r}: use 90s, 15m, 2h or 1d")
    return float(found.group(1)) * _UNIT_S[found.group(2)]


def _num(value: float | None, spec: str = ".3g") -> str:
    return "-" if value is None else format(value, spec)


def no_traffic_note(cli: CliContext, deployment: str, start: float, end: float) -> str:
    """Why a window of ``deployment`` is empty; NotFoundError when the deployment is
    unknown (neither recorded nor ever logged)."""
    cli.deployment_model(deployment)
    if cli.inference_log.latest_model(deployment) is None:
        return f"no traffic logged for {deployment!r} yet"
    return f"no traffic logged for {deployment!r} from {when(start)} to {when(end)} UTC"


def _check_json(result: DriftResult, top: int | None) -> dict[str, Any]:
    report = result.report
    prediction = report.prediction_drift
    return {
        "id": result.id,
        "model": result.model,
        "version": result.version,
        "window_start": result.window_start,
        "window_end": result.window_end,
        "rows": result.rows,
        "dataset_drift": report.dataset_drift,
        "share_drifted": report.share_drifted,
        "drifted_features": drifted_json(report, top),
        "prediction_drift": None if prediction is None else prediction.drifted,
        "report": report.to_dict(),
    }


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

    def repository(ctx: typer.Context) -> MonitoringRepository:
        return open_context(ctx).monitoring

    @contextmanager
    def user_errors() -> Iterator[None]:
        """One line and exit status 2 for a mistake, mounted or not."""
        try:
            yield
        except ModelyardError as error:
            print_error(error.message)
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
        as_json: AsJson = False,
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
            empty = None if data.snapshot.overall.traffic.requests else (
                no_traffic_note(cli, deployment, start, end)
            )  # fmt: skip
        if as_json:
            document = {"deployment": deployment, "start": start, "end": end, "path": str(path)}
            print_json({**document, "bytes": path.stat().st_size, "summary": rows, "note": empty})
            return
        print_table(
            f"{deployment}: {when(start)} .. {when(end)} UTC",
            list(rows[0]),
            [list(r.values()) for r in rows],
        )
        if empty:
            print_note(empty)
        print_note(f"wrote {path} ({path.stat().st_size:,} bytes)")

    @app.command()
    def metrics(
        ctx: typer.Context,
        deployment: str,
        since: Since = "1h",
        until: Until = None,
        by: Annotated[str, typer.Option(help="Group by version or arm.")] = "version",
        as_json: AsJson = False,
    ) -> None:
        """Traffic, errors, latency and live quality per version (or arm)."""
        with user_errors():
            if by not in ("version", "arm"):
                raise ValidationError(f"--by must be version or arm, got {by!r}")
            start, end = span(since, until)
            cli = open_context(ctx)
            log = cli.inference_log
            grouped: GroupBy = "arm" if by == "arm" else "version"
            if window_reader is not None:
                found = snapshot(window_reader(log, deployment, start, end), by=grouped)
            else:
                parts = window_parts(log, deployment, start, end)
                found = measure(parts, deployment, start, end, by=grouped, sample_rows=0).metrics
            empty = None if found.groups else no_traffic_note(cli, deployment, start, end)
        if as_json:
            print_json(
                {
                    "deployment": deployment, "start": start, "end": end, "by": by,
                    "groups": found.groups, "overall": found.overall, "note": empty,
                }
            )  # fmt: skip
            return
        if empty:
            print_note(empty)
            return
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
        print_table(f"{deployment}: {when(start)} .. {when(end)} UTC", columns, rows)

    @app.command()
    def drift(
        ctx: typer.Context,
        deployment: str,
        since: Since = "7d",
        limit: Annotated[int, typer.Option(min=1, help="Show the newest N checks.")] = 20,
        version: Annotated[int | None, typer.Option(help="Only this version.")] = None,
        top: Top = None,
        as_json: AsJson = False,
    ) -> None:
        """The stored drift checks of a deployment, newest last, with every drifted
        feature (strongest evidence first, effect size in brackets)."""
        with user_errors():
            check_top(top)
            start = parse_time(since, clock())
            found = drift_history(repository(ctx), deployment, start, version=version, limit=limit)
            empty = None
            if not found:
                open_context(ctx).deployment_model(deployment)
                empty = (
                    f"no drift checks of {deployment!r} stored since {when(start)} UTC; "
                    f"`modelyard monitor check {deployment}` runs one now (a server runs one "
                    "every monitoring.check_interval_s)"
                )
        if as_json:
            checks = [_check_json(r, top) for r in found]
            print_json({"deployment": deployment, "checks": checks, "note": empty})
            return
        if empty:
            print_note(empty)
            return
        print_table(
            f"{deployment}: {len(found)} drift check(s)",
            ["window end", "version", "rows", "drift", "share", "drifted features", "prediction"],
            [
                [
                    when(r.window_end), r.version, r.rows,
                    "DRIFT" if r.dataset_drift else "no", f"{r.share_drifted:.0%}",
                    drifted_text(r.report, top),
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
        top: Top = None,
        as_json: AsJson = False,
    ) -> None:
        """Run one monitoring pass now: store drift checks, evaluate alert rules, send webhooks.

        Each version that served at least 20 rows in the window is checked for drift;
        the others are listed with the reason they were not."""
        with user_errors():
            check_top(top)
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
                model_of=cli.model_of, min_rows=MIN_DRIFT_ROWS,
            )  # fmt: skip
            if deliver:
                with httpx.Client() as client:
                    deliver_due(checks, client, now, np.random.default_rng())
            groups = result.snapshot.groups
            empty = None if groups else no_traffic_note(cli, deployment, start, now)
            served = model or cli.deployment_model(deployment) if groups else ""
        versions: list[dict[str, Any]] = []
        for key, group in sorted(groups.items(), key=lambda kv: int(kv[0])):
            number, stored = int(key), result.drift.get(int(key))
            versions.append(
                {
                    "version": number,
                    "rows": group.traffic.rows,
                    "checked": stored is not None,
                    "not_checked": None if stored is not None else not_checked_reason(
                        group.traffic.rows, MIN_DRIFT_ROWS, served, number
                    ),
                    "drift": None if stored is None else _check_json(stored, top),
                }
            )  # fmt: skip
        alerts = [
            {"event": e.id, "reason": e.alert.reason, **e.alert.__dict__} for e in result.alerts
        ]
        if as_json:
            print_json(
                {
                    "deployment": deployment, "start": start, "end": now,
                    "min_rows": MIN_DRIFT_ROWS, "versions": versions, "alerts": alerts,
                    "note": empty,
                }
            )  # fmt: skip
            return
        if empty:
            print_note(f"{empty}: nothing to check")
        else:
            print_table(
                f"{deployment}: drift checks stored",
                ["version", "rows", "drift", "share", "drifted features"],
                [_check_row(v, result.drift.get(v["version"]), top) for v in versions],
            )
        for event in result.alerts:
            print_note(f"alert {event.alert.reason}")
        if not result.alerts:
            print_note("no alert fired")

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
        as_json: AsJson = False,
    ) -> None:
        """Create (or replace) an alert rule of a deployment."""
        with user_errors():
            rule = AlertRule(
                deployment, name, metric, threshold, cast(Comparison, comparison),
                for_windows, parse_duration(cooldown), version, webhook,
            )  # fmt: skip
            open_context(ctx).deployment_model(deployment)
            save_rule(repository(ctx), rule, clock())
        if as_json:
            print_json(rule)
            return
        print_note(f"rule {name!r} on {deployment}: {rule.describe()}")

    @alerts_app.command("list")
    def alerts_list(
        ctx: typer.Context,
        deployment: Annotated[str | None, typer.Argument()] = None,
        as_json: AsJson = False,
    ) -> None:
        """Alert rules, of one deployment or all."""
        with user_errors():
            if deployment is not None:
                open_context(ctx).deployment_model(deployment)
            found = load_rules(repository(ctx), deployment)
        if as_json:
            print_json(found)
            return
        print_table(
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
        print_note(f"removed rule {name!r} from {deployment}")

    @alerts_app.command("history")
    def alerts_history(
        ctx: typer.Context, deployment: str, since: Since = "7d", as_json: AsJson = False
    ) -> None:
        """Alerts raised for a deployment."""
        with user_errors():
            open_context(ctx).deployment_model(deployment)
            found = recent_alerts(repository(ctx), deployment, parse_time(since, clock()))
        if as_json:
            print_json(found)
            return
        print_table(
            f"{deployment}: {len(found)} alert(s)",
            ["when", "event", "alert"],
            [[when(a["at"]), a["id"], a["reason"]] for a in found],
        )

    return app


def _check_row(version: dict[str, Any], stored: DriftResult | None, top: int | None) -> list[Any]:
    if stored is None:
        return [version["version"], version["rows"], "not checked", "-", version["not_checked"]]
    share = f"{stored.share_drifted:.0%}"
    verdict = "DRIFT" if stored.dataset_drift else "no"
    return [version["version"], stored.rows, verdict, share, drifted_text(stored.report, top)]


monitor_app = make_monitor_app()
