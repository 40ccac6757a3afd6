"""The port tracking keeps its runs behind: ``RunRepository``.

``SqlRunRepository`` (``tracking.sql``) implements it on the metadata database,
``InMemoryRunRepository`` (``tracking.memory``) in memory for tests; the contract
test ``tests/integration/tracking/test_repository_contract.py`` holds both to the
same behaviour. Every method is one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from modelyard.store.artifacts import ArtifactRef
from modelyard.tracking.fingerprint import DataFingerprint
from modelyard.tracking.records import MetricPoint, RunInfo
from modelyard.tracking.search import RunQuery


class RunRepository(Protocol):
    """Runs with their params, metrics, tags, artifacts and datasets.

    Writes about a run that does not exist raise ``RejectedWriteError``.
    """

    def create_run(self, run: RunInfo) -> None:
        """Store a new run: its identity, status and environment (its logged fields stay
        empty; ``write_batch`` and the ``record_*`` methods fill them)."""
        ...

    def write_batch(
        self,
        run_id: str,
        metrics: Sequence[MetricPoint],
        params: Mapping[str, str],
        tags: Mapping[str, str],
    ) -> None:
        """Append the run's metric points (each key's latest value is the one with the
        highest step, the last written among equal steps) and set the params and tags,
        all at once."""
        ...

    def record_dataset(self, run_id: str, name: str, fingerprint: DataFingerprint) -> None:
        """Record (or replace) the fingerprint of a dataset the run used."""
        ...

    def record_artifact(self, run_id: str, name: str, ref: ArtifactRef) -> None:
        """Record (or replace) a stored file under ``name``."""
        ...

    def end_run(self, run_id: str, status: str, end_time: float) -> None:
        """Set the run's final status and end time."""
        ...

    def get_run(self, run_id: str) -> RunInfo | None:
        """The run with exactly this id, with everything it logged; None if there is none."""
        ...

    def run_ids_starting_with(self, prefix: str, limit: int) -> list[str]:
        """Up to ``limit`` ids of runs whose id starts with ``prefix``."""
        ...

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float, float]]:
        """Every point of one metric as ``(step, value, timestamp)``, by step, then as written."""
        ...

    def datasets(self, run_id: str) -> dict[str, DataFingerprint]:
        """The datasets the run recorded, by name (none for an unknown run)."""
        ...

    def search(self, query: RunQuery) -> list[RunInfo]:
        """Runs matching ``query``, newest first, with their params and latest metrics
        (tags, artifacts and datasets are left empty)."""
        ...
