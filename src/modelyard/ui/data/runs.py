"""What the runs and run pages show, as JSON-ready documents.

The runs list is ``Tracker.search_runs_page`` (``modelyard runs list``): a filter in
the run filter language, newest first, one range of the (start time, id) index per
page. Of the params and metrics each run logged, the page sends only the columns a
person chose (by default the page's most common few), so a project logging hundreds
of metrics gives a table of a few columns, not hundreds. A run's page charts a few
metric histories and fetches any other on demand, each thinned to at most
``POINT_LIMIT`` points.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from modelyard.errors import NotFoundError, RunNotFoundError, ValidationError
from modelyard.tracking import RunInfo
from modelyard.ui.context import UiContext

STATUSES = ("RUNNING", "FINISHED", "FAILED", "KILLED")
COLUMN_LIMIT = 8
DEFAULT_METRIC_COLUMNS = 4
DEFAULT_PARAM_COLUMNS = 2
KEYS_OFFERED = 100  # keys offered as columns, per kind
CHARTS = 6  # metric histories a run's page draws at once; the others on demand
POINT_LIMIT = 1000
_COLUMN = re.compile(r"^(metrics|params)\.([\w.\-/]+)$")


def parse_columns(columns: Sequence[str]) -> list[tuple[str, str]]:
    """``["metrics.auc", "params.lr"]`` as ``[("metrics", "auc"), ("params", "lr")]``."""
    parsed = []
    for column in columns:
        match = _COLUMN.match(column)
        if match is None:
            raise ValidationError(
                f"columns: {column!r} is not a column; write metrics.NAME or params.NAME"
            )
        parsed.append((match.group(1), match.group(2)))
    return parsed


def common_columns(runs: Sequence[RunInfo]) -> list[tuple[str, str]]:
    """The metrics and params most runs of the page logged (then by name): the columns
    shown when a person chose none."""

    def most_common(kind: str, limit: int) -> list[tuple[str, str]]:
        counts = Counter(key for run in runs for key in getattr(run, kind))
        ranked = sorted(counts, key=lambda key: (-counts[key], key))
        return [(kind, key) for key in ranked[:limit]]

    return most_common("metrics", DEFAULT_METRIC_COLUMNS) + most_common(
        "params", DEFAULT_PARAM_COLUMNS
    )


def _offered(runs: Sequence[RunInfo], kind: str) -> list[str]:
    return sorted({key for run in runs for key in getattr(run, kind)})[:KEYS_OFFERED]


def runs_page(
    ui: UiContext,
    *,
    filter: str | None,
    experiment: str | None,
    status: str | None,
    limit: int,
    page_token: str | None,
    columns: list[str] | None,
) -> dict[str, Any]:
    """One page of runs matching ``filter``, newest first, with the chosen columns."""
    if status is not None and status.upper() not in STATUSES:
        raise ValidationError(f"status: one of {', '.join(STATUSES)}, not {status!r}")
    chosen = None if columns is None else parse_columns(columns)
    try:
        page = ui.yard.tracking.search_runs_page(
            filter or "", experiment=experiment, status=status, limit=limit, page_token=page_token
        )
    except ValidationError as error:
        if error.message.startswith("page_token"):
            raise
        raise ValidationError(f"filter: {error.message}") from None
    shown = common_columns(page.runs) if chosen is None else chosen
    return {
        "runs": [
            {
                "id": run.id,
                "name": run.name,
                "experiment": run.experiment,
                "status": run.status,
                "start_time": run.start_time,
                "end_time": run.end_time,
                "user": run.user,
                "values": [getattr(run, kind).get(key) for kind, key in shown],
            }
            for run in page.runs
        ],
        "columns": [f"{kind}.{key}" for kind, key in shown],
        "offered": {
            "metrics": _offered(page.runs, "metrics"),
            "params": _offered(page.runs, "params"),
        },
        "next_page_token": page.next_page_token,
    }


def thin(points: Sequence[tuple[int, float, float]], limit: int = POINT_LIMIT) -> list[Any]:
    """At most ``limit`` of ``points``, evenly spaced, the last always kept: a chart
    needs no more than its width in points."""
    if len(points) <= limit:
        return list(points)
    stride = -(-len(points) // limit)  # ceil: never more than ``limit``
    kept = list(points[::stride])
    kept[-1] = points[-1]  # the latest value is the one the table shows
    return kept


def history_json(key: str, points: Sequence[tuple[int, float, float]]) -> dict[str, Any]:
    kept = thin(points)
    return {
        "key": key,
        "steps": [step for step, _, _ in kept],
        "values": [value for _, value, _ in kept],
        "timestamps": [at for _, _, at in kept],
        "points": len(points),
    }


def _run(ui: UiContext, run_id: str) -> RunInfo:
    """The run with this id or unique prefix (of 6 or more); RunNotFoundError (404) if none."""
    if not run_id.isalnum():  # ids are hex: no LIKE wildcard reaches the prefix search
        raise RunNotFoundError(f"no run with id {run_id!r}")
    return ui.yard.tracking.get_run(run_id)


def run_page(ui: UiContext, run_id: str, charts: list[str] | None) -> dict[str, Any]:
    """One run: params, metrics (the latest of each, and the histories of ``charts``,
    by default the first few by name), tags, artifacts, environment and datasets."""
    tracking = ui.yard.tracking
    run = _run(ui, run_id)
    keys = sorted(run.metrics)
    if charts is None:
        charted = keys[:CHARTS]
    else:
        unknown = [key for key in charts if key not in run.metrics]
        if unknown:
            raise ValidationError(f"charts: run {run.id[:12]} logged no metric {unknown[0]!r}")
        charted = charts[:CHARTS]
    return {
        "run": {
            "id": run.id,
            "name": run.name,
            "experiment": run.experiment,
            "status": run.status,
            "start_time": run.start_time,
            "end_time": run.end_time,
            "seed": run.seed,
            "user": run.user,
            "git_commit": run.git_commit,
            "environment": run.environment,
            "params": run.params,
            "metrics": run.metrics,
            "tags": run.tags,
            "artifacts": run.artifacts,
            "datasets": run.datasets,
        },
        "charts": [history_json(key, tracking.metric_history(run.id, key)) for key in charted],
    }


def metric_page(ui: UiContext, run_id: str, key: str | None) -> dict[str, Any]:
    """One metric's history (thinned), for a chart the run page adds on demand."""
    if key is None:
        raise ValidationError("key: name the metric")
    run = _run(ui, run_id)
    points = ui.yard.tracking.metric_history(run.id, key)
    if not points:
        raise NotFoundError(f"run {run.id[:12]} logged no metric {key!r}")
    return history_json(key, points)
