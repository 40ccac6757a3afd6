"""``SqlRunRepository``: tracking's runs in the metadata database (SQLAlchemy Core).

Every read and write goes through SQLAlchemy; metric points go through the
driver's ``executemany`` (see ``_write_metrics``). ``search`` compiles the
parsed filter (``tracking.search``) to ``IN (SELECT ...)`` subqueries.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, RowMapping, Select, delete, insert, or_, select, update

from modelyard.store.artifacts import ArtifactRef
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
from modelyard.tracking.fingerprint import DataFingerprint
from modelyard.tracking.records import MetricPoint, RunInfo
from modelyard.tracking.search import COMPARISONS, Condition, RunQuery


class SqlRunRepository:
    """The ``RunRepository`` of one metadata database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- writing -----------------------------------------------------------------

    def create_run(self, run: RunInfo) -> None:
        with self._db.write() as conn:
            conn.execute(
                insert(runs).values(
                    id=run.id,
                    name=run.name,
                    experiment=run.experiment,
                    status=run.status,
                    start_time=run.start_time,
                    end_time=run.end_time,
                    seed=run.seed,
                    user=run.user,
                    git_commit=run.git_commit,
                    environment=json.dumps(run.environment),
                )
            )

    def write_batch(
        self,
        run_id: str,
        metrics: Sequence[MetricPoint],
        params: Mapping[str, str],
        tags: Mapping[str, str],
    ) -> None:
        if not (metrics or params or tags):
            return
        with self._db.write() as conn:
            if metrics:
                _write_metrics(conn, metrics)
            for table, values in ((run_params, params), (run_tags, tags)):
                if not values:
                    continue
                conn.execute(
                    delete(table).where(table.c.run_id == run_id, table.c.key.in_(list(values)))
                )
                conn.execute(
                    insert(table),
                    [{"run_id": run_id, "key": k, "value": v} for k, v in values.items()],
                )

    def record_dataset(self, run_id: str, name: str, fingerprint: DataFingerprint) -> None:
        with self._db.write() as conn:
            conn.execute(
                delete(run_datasets).where(
                    run_datasets.c.run_id == run_id, run_datasets.c.name == name
                )
            )
            conn.execute(
                insert(run_datasets).values(
                    run_id=run_id,
                    name=name,
                    digest=fingerprint.digest,
                    schema=json.dumps(fingerprint.schema),
                    rows=fingerprint.rows,
                )
            )

    def record_artifact(self, run_id: str, name: str, ref: ArtifactRef) -> None:
        with self._db.write() as conn:
            conn.execute(
                delete(run_artifacts).where(
                    run_artifacts.c.run_id == run_id, run_artifacts.c.name == name
                )
            )
            conn.execute(
                insert(run_artifacts).values(
                    run_id=run_id, name=name, digest=ref.digest, size=ref.size
                )
            )

    def end_run(self, run_id: str, status: str, end_time: float) -> None:
        with self._db.write() as conn:
            conn.execute(
                update(runs).where(runs.c.id == run_id).values(status=status, end_time=end_time)
            )

    # -- reading -----------------------------------------------------------------

    def get_run(self, run_id: str) -> RunInfo | None:
        with self._db.read() as conn:
            row = conn.execute(select(runs).where(runs.c.id == run_id)).mappings().first()
            if row is None:
                return None
            params = dict(
                conn.execute(
                    select(run_params.c.key, run_params.c.value).where(
                        run_params.c.run_id == run_id
                    )
                ).all()
            )
            tags = dict(
                conn.execute(
                    select(run_tags.c.key, run_tags.c.value).where(run_tags.c.run_id == run_id)
                ).all()
            )
            artifacts = dict(
                conn.execute(
                    select(run_artifacts.c.name, run_artifacts.c.digest).where(
                        run_artifacts.c.run_id == run_id
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
                    select(run_datasets).where(run_datasets.c.run_id == run_id)
                ).mappings()
            }
            metrics: dict[str, float] = dict(
                conn.execute(
                    select(run_latest_metrics.c.key, run_latest_metrics.c.value).where(
                        run_latest_metrics.c.run_id == run_id
                    )
                ).all()
            )
        return _info(
            row, params=params, tags=tags, artifacts=artifacts, datasets=datasets, metrics=metrics
        )

    def run_ids_starting_with(self, prefix: str, limit: int) -> list[str]:
        with self._db.read() as conn:
            return list(
                conn.execute(
                    select(runs.c.id).where(runs.c.id.startswith(prefix)).limit(limit)
                ).scalars()
            )

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float, float]]:
        with self._db.read() as conn:
            rows = conn.execute(
                select(run_metrics.c.step, run_metrics.c.value, run_metrics.c.timestamp)
                .where(run_metrics.c.run_id == run_id, run_metrics.c.key == key)
                .order_by(run_metrics.c.step, run_metrics.c.id)
            ).all()
        return [(step, value, timestamp) for step, value, timestamp in rows]

    def datasets(self, run_id: str) -> dict[str, DataFingerprint]:
        with self._db.read() as conn:
            rows = conn.execute(
                select(run_datasets).where(run_datasets.c.run_id == run_id)
            ).mappings()
            return {
                r["name"]: DataFingerprint(
                    r["digest"], tuple(tuple(c) for c in json.loads(r["schema"])), r["rows"]
                )
                for r in rows
            }

    def search(self, query: RunQuery) -> list[RunInfo]:
        statement = (
            select(runs).order_by(runs.c.start_time.desc(), runs.c.id.desc()).limit(query.limit)
        )
        if query.after is not None:
            # The bound first, alone, so that the index on (start_time, id) gives the range.
            at, run_id = query.after
            statement = statement.where(
                runs.c.start_time <= at,
                or_(runs.c.start_time < at, runs.c.id < run_id),
            )
        if query.experiment is not None:
            statement = statement.where(runs.c.experiment == query.experiment)
        if query.status is not None:
            statement = statement.where(runs.c.status == query.status)
        for condition in query.conditions:
            statement = _where(statement, condition)
        with self._db.read() as conn:
            rows = conn.execute(statement).mappings().all()
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


def _where(statement: Select[Any], condition: Condition) -> Select[Any]:
    """Keep the runs that logged ``condition.key`` with a value for which it holds."""
    table = {"metrics": run_latest_metrics, "params": run_params, "tags": run_tags}[condition.kind]
    compare = COMPARISONS[condition.op]
    matching = select(table.c.run_id).where(
        table.c.key == condition.key, compare(table.c.value, condition.value)
    )
    return statement.where(runs.c.id.in_(matching))


_INSERT_METRICS = (
    "INSERT INTO run_metrics (run_id, key, value, step, timestamp) VALUES (?, ?, ?, ?, ?)"
)
_UPSERT_LATEST = """
INSERT INTO run_latest_metrics (run_id, key, value, step, timestamp) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (run_id, key) DO UPDATE
SET value = excluded.value, step = excluded.step, timestamp = excluded.timestamp
WHERE excluded.step >= run_latest_metrics.step"""


def _write_metrics(conn: Connection, points: Sequence[MetricPoint]) -> None:
    """Append the points and move each key's latest value (highest step, then last written).

    Goes through the driver's ``executemany``: SQLAlchemy's per-row handling
    cost three times SQLite's own insert (10 us against 3.5 us per point).
    """
    latest: dict[str, MetricPoint] = {}
    for point in points:
        current = latest.get(point[1])
        if current is None or point[3] >= current[3]:
            latest[point[1]] = point
    placeholder = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    conn.exec_driver_sql(_INSERT_METRICS.replace("?", placeholder), list(points))
    conn.exec_driver_sql(_UPSERT_LATEST.replace("?", placeholder), list(latest.values()))


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _info(row: RowMapping, **logged: Any) -> RunInfo:
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
