"""``InMemoryRunRepository``: tracking's port in memory, for tests that need no database.

It behaves as ``SqlRunRepository`` does (the contract test runs the same
assertions on both): what is stored goes through JSON where the database keeps
JSON, writes about an unknown run are refused, and one lock makes each method
atomic, so it may be shared between threads.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from modelyard.errors import RejectedWriteError
from modelyard.store.artifacts import ArtifactRef
from modelyard.tracking.fingerprint import DataFingerprint
from modelyard.tracking.records import MetricPoint, RunInfo
from modelyard.tracking.search import RunQuery, run_key


@dataclass
class _StoredRun:
    info: RunInfo
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    points: list[MetricPoint] = field(default_factory=list)
    latest: dict[str, MetricPoint] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    datasets: dict[str, DataFingerprint] = field(default_factory=dict)

    def logged(self) -> RunInfo:
        """The run with everything it logged, as ``get_run`` returns it."""
        return replace(
            self.searched(),
            tags=dict(self.tags),
            artifacts=dict(self.artifacts),
            datasets={
                name: {"digest": fp.digest, "schema": _json(fp.schema), "rows": fp.rows}
                for name, fp in self.datasets.items()
            },
        )

    def searched(self) -> RunInfo:
        """The run with its params and latest metrics, as ``search`` returns it."""
        return replace(self.info, params=dict(self.params), metrics=self.metrics())

    def metrics(self) -> dict[str, float]:
        return {key: point[2] for key, point in self.latest.items()}


class InMemoryRunRepository:
    """The ``RunRepository`` of a dict of runs."""

    def __init__(self) -> None:
        self._runs: dict[str, _StoredRun] = {}
        self._lock = threading.Lock()

    def _run(self, run_id: str) -> _StoredRun:
        found = self._runs.get(run_id)
        if found is None:
            raise RejectedWriteError(f"the database refused the write: no run {run_id!r}")
        return found

    # -- writing -----------------------------------------------------------------

    def create_run(self, run: RunInfo) -> None:
        with self._lock:
            if run.id in self._runs:
                raise RejectedWriteError(f"the database refused the write: run {run.id!r} exists")
            stored = replace(
                run,
                environment=_json(run.environment),
                params={},
                metrics={},
                tags={},
                artifacts={},
                datasets={},
            )
            self._runs[run.id] = _StoredRun(stored)

    def write_batch(
        self,
        run_id: str,
        metrics: Sequence[MetricPoint],
        params: Mapping[str, str],
        tags: Mapping[str, str],
    ) -> None:
        if not (metrics or params or tags):
            return
        with self._lock:
            run = self._run(run_id)
            for point in metrics:
                current = run.latest.get(point[1])
                if current is None or point[3] >= current[3]:
                    run.latest[point[1]] = point
            run.points.extend(metrics)
            run.params.update(params)
            run.tags.update(tags)

    def record_dataset(self, run_id: str, name: str, fingerprint: DataFingerprint) -> None:
        with self._lock:
            self._run(run_id).datasets[name] = fingerprint

    def record_artifact(self, run_id: str, name: str, ref: ArtifactRef) -> None:
        with self._lock:
            self._run(run_id).artifacts[name] = ref.digest

    def end_run(self, run_id: str, status: str, end_time: float) -> None:
        with self._lock:
            run = self._runs.get(run_id)
            if run is not None:
                run.info = replace(run.info, status=status, end_time=end_time)

    # -- reading -----------------------------------------------------------------

    def get_run(self, run_id: str) -> RunInfo | None:
        with self._lock:
            run = self._runs.get(run_id)
            return None if run is None else run.logged()

    def run_ids_starting_with(self, prefix: str, limit: int) -> list[str]:
        with self._lock:
            return [run_id for run_id in self._runs if run_id.startswith(prefix)][:limit]

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float, float]]:
        with self._lock:
            run = self._runs.get(run_id)
            points = [] if run is None else [p for p in run.points if p[1] == key]
        return [(step, value, at) for _, _, value, step, at in sorted(points, key=lambda p: p[3])]

    def datasets(self, run_id: str) -> dict[str, DataFingerprint]:
        with self._lock:
            run = self._runs.get(run_id)
            return {} if run is None else dict(run.datasets)

    def search(self, query: RunQuery) -> list[RunInfo]:
        with self._lock:
            newest_first = sorted(self._runs.values(), key=lambda r: run_key(r.info), reverse=True)
            found = [run for run in newest_first if query.matches(run.logged())]
            return [run.searched() for run in found[: query.limit]]


def _json(value: Any) -> Any:
    """``value`` as it reads back from a JSON column (tuples become lists)."""
    return json.loads(json.dumps(value))
