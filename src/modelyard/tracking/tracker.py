"""Starting runs and reading them back: get, list, search, metric history."""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, and_, insert, select

from modelyard.errors import RunNotFoundError, ValidationError
from modelyard.store.artifacts import ArtifactStore
from modelyard.store.database import Database
from modelyard.store.schema import (
    run_artifacts,
    run_datasets,
    run_latest_metrics,
    run_metrics,
    run_params,
    run_tags,
    runs,
)
from modelyard.tracking.environment import capture_environment, git_commit
from modelyard.tracking.run import Run
from modelyard.tracking.seeding import seed_everything


@dataclass(frozen=True)
class RunInfo:
    """A run as stored: identity, status, environment and what was logged (latest metrics)."""

    id: str
    name: str
    experiment: str
    status: str
    start_time: float
    end_time: float | None
    seed: int | None
    user: str | None
    git_commit: str | None
    environment: dict[str, Any]
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)


_CONDITION = re.compile(r"^\s*(metrics|params|tags)\.([\w.\-/]+)\s*(=|!=|<=|>=|<|>)\s*(.+?)\s*$")
_OPS = {
    "=": lambda c, v: c == v,
    "!=": lambda c, v: c != v,
    "<": lambda c, v: c < v,
    "<=": lambda c, v: c <= v,
    ">": lambda c, v: c > v,
    ">=": lambda c, v: c >= v,
}


class Tracker:
    """Runs in one metadata database and artifact store."""

    def __init__(
        self,
        db: Database,
        artifacts: ArtifactStore,
        *,
        user: str | None = None,
        flush_points: int = 10_000,
    ) -> None:
        self._db = db
        self._artifacts = artifacts
        self._user = user
        self._flush_points = flush_points

    def start_run(
        self,
        name: str,
        *,
        seed: int | None = None,
        experiment: str = "default",
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
    ) -> Run:
        """Create a run, seed the random generators if ``seed`` is given, record the environment."""
        if not name or len(name) > 255:
            raise ValidationError(f"run name must be 1-255 characters, got {name!r}")
        if seed is not None:
            seed_everything(seed)
        run_id = uuid.uuid4().hex
        with self._db.write() as conn:
            conn.execute(
                insert(runs).values(
                    id=run_id,
                    name=name,
                    experiment=experiment,
                    status="RUNNING",
                    start_time=time.time(),
                    seed=seed,
                    user=self._user,
                    git_commit=git_commit(),
                    environment=json.dumps(capture_environment()),
                )
            )
        run = Run(run_id, name, self._db, self._artifacts, flush_points=self._flush_points)
        if params:
            run.log_params(params)
        for key, value in (tags or {}).items():
            run.set_tag(key, value)
        return run

    def get_run(self, run_id: str) -> RunInfo:
        """The run with this id (a unique prefix of at least 6 characters also works)."""
        with self._db.read() as conn:
            query = select(runs)
            if len(run_id) < 32:
                if len(run_id) < 6:
                    raise RunNotFoundError(
                        f"run id {run_id!r} is too short: give at least 6 characters"
                    )
                query = query.where(runs.c.id.startswith(run_id)).limit(2)
            else:
                query = query.where(runs.c.id == run_id)
            rows = conn.execute(query).mappings().all()
            if not rows:
                raise RunNotFoundError(f"no run with id {run_id!r}")
            if len(rows) > 1:
                raise RunNotFoundError(
                    f"run id prefix {run_id!r} matches several runs; give more characters"
                )
            row = rows[0]
            rid = row["id"]
            params = dict(
                conn.execute(
                    select(run_params.c.key, run_params.c.value).where(run_params.c.run_id == rid)
                ).all()
            )
            tags = dict(
                conn.execute(
                    select(run_tags.c.key, run_tags.c.value).where(run_tags.c.run_id == rid)
                ).all()
            )
            artifacts = dict(
                conn.execute(
                    select(run_artifacts.c.name, run_artifacts.c.digest).where(
                        run_artifacts.c.run_id == rid
                    )
                ).all()
            )
            datasets = {
                d["name"]: {
                    "digest": d["digest"],
                    "schema": json.loads(d["schema"]),
                    "rows": d["rows"],
                }
                for d in conn.execute(
                    select(run_datasets).where(run_datasets.c.run_id == rid)
                ).mappings()
            }
            metrics: dict[str, float] = dict(
                conn.execute(
                    select(run_latest_metrics.c.key, run_latest_metrics.c.value).where(
                        run_latest_metrics.c.run_id == rid
                    )
                ).all()
            )
        return _info(
            row, params=params, tags=tags, artifacts=artifacts, datasets=datasets, metrics=metrics
        )

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float, float]]:
        """All points of one metric as ``(step, value, timestamp)``, by step."""
        with self._db.read() as conn:
            rows = conn.execute(
                select(run_metrics.c.step, run_metrics.c.value, run_metrics.c.timestamp)
                .where(run_metrics.c.run_id == run_id, run_metrics.c.key == key)
                .order_by(run_metrics.c.step, run_metrics.c.id)
            ).all()
        return list(rows)

    def search_runs(
        self,
        filter: str = "",
        *,
        experiment: str | None = None,
        status: str | None = None,
        limit: int = 1000,
    ) -> list[RunInfo]:
        """Runs matching ``filter``, newest first.

        ``filter`` joins conditions with ``and``: ``metrics.auc > 0.9 and params.model = 'rf'``.
        Metric conditions compare the latest value of that metric.
        """
        query = select(runs).order_by(runs.c.start_time.desc()).limit(limit)
        if experiment is not None:
            query = query.where(runs.c.experiment == experiment)
        if status is not None:
            query = query.where(runs.c.status == status.upper())
        query = _apply_filter(query, filter)
        with self._db.read() as conn:
            rows = conn.execute(query).mappings().all()
            ids = [r["id"] for r in rows]
            params: dict[str, dict[str, str]] = {i: {} for i in ids}
            metrics: dict[str, dict[str, float]] = {i: {} for i in ids}
            for chunk in _chunks(ids, 500):
                for rid, k, v in conn.execute(
                    select(run_params.c.run_id, run_params.c.key, run_params.c.value).where(
                        run_params.c.run_id.in_(chunk)
                    )
                ).all():
                    params[rid][k] = v
                latest = select(
                    run_latest_metrics.c.run_id,
                    run_latest_metrics.c.key,
                    run_latest_metrics.c.value,
                ).where(run_latest_metrics.c.run_id.in_(chunk))
                for rid, k, v in conn.execute(latest).all():
                    metrics[rid][k] = v
        return [_info(r, params=params[r["id"]], metrics=metrics[r["id"]]) for r in rows]

    list_runs = search_runs


def _apply_filter(query: Select[Any], text: str) -> Select[Any]:
    if not text.strip():
        return query
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        match = _CONDITION.match(part)
        if not match:
            raise ValidationError(
                f'cannot read filter condition {part!r}: write e.g. "metrics.auc > 0.9" or '
                "\"params.model = 'rf'\""
            )
        kind, key, op, raw = match.groups()
        value: Any = raw.strip("'\"")
        if kind == "metrics":
            try:
                value = float(value)
            except ValueError:
                raise ValidationError(
                    f"metric condition {part!r} needs a number, got {raw!r}"
                ) from None
            matching = select(run_latest_metrics.c.run_id).where(
                run_latest_metrics.c.key == key, _OPS[op](run_latest_metrics.c.value, value)
            )
            query = query.where(runs.c.id.in_(matching))
        else:
            table = run_params if kind == "params" else run_tags
            if op not in ("=", "!="):
                raise ValidationError(
                    f"{kind} can only be compared with = or !=, got {op!r} in {part!r}"
                )
            query = query.where(
                runs.c.id.in_(
                    select(table.c.run_id).where(
                        and_(table.c.key == key, _OPS[op](table.c.value, value))
                    )
                )
            )
    return query


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _info(row: Any, **logged: Any) -> RunInfo:
    return RunInfo(
        id=row["id"],
        name=row["name"],
        experiment=row["experiment"],
        status=row["status"],
        start_time=row["start_time"],
        end_time=row["end_time"],
        seed=row["seed"],
        user=row["user"],
        git_commit=row["git_commit"],
        environment=json.loads(row["environment"] or "{}"),
        **logged,
    )
