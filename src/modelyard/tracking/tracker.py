"""Starting runs and reading them back: get, list, search, metric history."""

from __future__ import annotations

import time
import uuid
from typing import Any

from modelyard.errors import RunNotFoundError, ValidationError
from modelyard.store.artifacts import ArtifactStore
from modelyard.tracking.environment import capture_environment, git_commit
from modelyard.tracking.fingerprint import DataFingerprint
from modelyard.tracking.records import RunInfo, RunPage
from modelyard.tracking.repository import RunRepository
from modelyard.tracking.run import Run
from modelyard.tracking.search import (
    RunQuery,
    parse_filter,
    parse_page_token,
    run_key,
)
from modelyard.tracking.search import page_token as token_after
from modelyard.tracking.seeding import seed_everything

_ID_LENGTH = 32
_SHORTEST_PREFIX = 6


class Tracker:
    """Runs kept in one ``RunRepository``, their files in one artifact store."""

    def __init__(
        self,
        runs: RunRepository,
        artifacts: ArtifactStore,
        *,
        user: str | None = None,
        flush_points: int = 10_000,
    ) -> None:
        self._runs = runs
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
        self._runs.create_run(
            RunInfo(
                id=run_id,
                name=name,
                experiment=experiment,
                status="RUNNING",
                start_time=time.time(),
                end_time=None,
                seed=seed,
                user=self._user,
                git_commit=git_commit(),
                environment=capture_environment(),
            )
        )
        run = Run(run_id, name, self._runs, self._artifacts, flush_points=self._flush_points)
        if params:
            run.log_params(params)
        for key, value in (tags or {}).items():
            run.set_tag(key, value)
        if params or tags:
            run.flush()  # what a run was started with is kept even if its process dies
        return run

    def end_run(self, run_id: str, status: str = "KILLED") -> None:
        """Mark a run its process left ``RUNNING`` (it died) as ended with ``status``."""
        self._runs.end_run(self.get_run(run_id).id, status, time.time())

    def get_run(self, run_id: str) -> RunInfo:
        """The run with this id (a unique prefix of at least 6 characters also works)."""
        if len(run_id) < _ID_LENGTH:
            if len(run_id) < _SHORTEST_PREFIX:
                raise RunNotFoundError(
                    f"run id {run_id!r} is too short: give at least {_SHORTEST_PREFIX} characters"
                )
            ids = self._runs.run_ids_starting_with(run_id, limit=2)
            if len(ids) > 1:
                raise RunNotFoundError(
                    f"run id prefix {run_id!r} matches several runs; give more characters"
                )
            if ids:
                run_id = ids[0]
        found = self._runs.get_run(run_id)
        if found is None:
            raise RunNotFoundError(f"no run with id {run_id!r}")
        return found

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float, float]]:
        """All points of one metric as ``(step, value, timestamp)``, by step."""
        return self._runs.metric_history(run_id, key)

    def run_datasets(self, run_id: str) -> dict[str, DataFingerprint]:
        """The datasets a run recorded with ``Run.log_dataset``, by name (none if unknown)."""
        return self._runs.datasets(run_id)

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
        query = RunQuery(
            parse_filter(filter),
            experiment=experiment,
            status=None if status is None else status.upper(),
            limit=limit,
        )
        return self._runs.search(query)

    list_runs = search_runs

    def search_runs_page(
        self,
        filter: str = "",
        *,
        experiment: str | None = None,
        status: str | None = None,
        limit: int = 50,
        page_token: str | None = None,
    ) -> RunPage:
        """One page of ``search_runs``: at most ``limit`` runs after ``page_token`` (the
        ``next_page_token`` of the page before; None: the newest), and the token of the next
        page, None on the last. Each page is one index range, whatever its number."""
        if limit < 1:
            raise ValidationError(f"limit must be at least 1, got {limit}")
        query = RunQuery(
            parse_filter(filter),
            experiment=experiment,
            status=None if status is None else status.upper(),
            limit=limit + 1,  # one more than shown tells whether a next page exists
            after=None if page_token is None else parse_page_token(page_token),
        )
        found = self._runs.search(query)
        more = len(found) > limit
        return RunPage(found[:limit], token_after(run_key(found[limit - 1])) if more else None)
