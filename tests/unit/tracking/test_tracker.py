"""``Tracker`` and ``Run`` over the in-memory repository: what a run buffers and when it
writes, and how runs are found again."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest

from modelyard.errors import RunNotFoundError, ValidationError
from modelyard.store.artifacts import LocalArtifactStore
from modelyard.tracking import InMemoryRunRepository, RunInfo, Tracker
from modelyard.tracking.records import MetricPoint


class CountingRuns(InMemoryRunRepository):
    """The fake, counting the batches written."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[tuple[int, int, int]] = []

    def write_batch(
        self,
        run_id: str,
        metrics: Sequence[MetricPoint],
        params: Mapping[str, str],
        tags: Mapping[str, str],
    ) -> None:
        self.batches.append((len(metrics), len(params), len(tags)))
        super().write_batch(run_id, metrics, params, tags)


@pytest.fixture
def runs() -> CountingRuns:
    return CountingRuns()


@pytest.fixture
def tracker(runs: CountingRuns, tmp_path: Path) -> Tracker:
    return Tracker(runs, LocalArtifactStore(tmp_path / "artifacts"), user="ana", flush_points=100)


def test_a_run_is_created_with_who_where_and_what_it_was_given(tracker: Tracker) -> None:
    run = tracker.start_run("train", seed=7, experiment="fraud", params={"depth": 6})
    info = tracker.get_run(run.id)
    assert (info.name, info.experiment, info.status, info.seed, info.user) == (
        "train",
        "fraud",
        "RUNNING",
        7,
        "ana",
    )
    assert info.end_time is None
    assert "numpy" in info.environment["packages"]
    # what a run starts with is written with it: a run whose process dies keeps it
    assert info.params == {"depth": "6"}
    run.log_param("trees", 100)
    assert tracker.get_run(run.id).params == {"depth": "6"}, "later params are buffered"
    run.end()
    assert tracker.get_run(run.id).params == {"depth": "6", "trees": "100"}


@pytest.mark.parametrize("name", ["", "x" * 256])
def test_a_run_needs_a_name(tracker: Tracker, name: str) -> None:
    with pytest.raises(ValidationError, match="run name must be 1-255 characters"):
        tracker.start_run(name)


def test_points_are_written_in_batches_of_flush_points(
    tracker: Tracker, runs: CountingRuns
) -> None:
    with tracker.start_run("many") as run:
        for i in range(250):
            run.log_metric("loss", float(i))
        assert runs.batches == [(100, 0, 0), (100, 0, 0)]
    assert runs.batches[-1] == (50, 0, 0)
    assert [step for step, _, _ in tracker.metric_history(run.id, "loss")] == list(range(250))
    assert tracker.get_run(run.id).metrics == {"loss": 249.0}


def test_a_flush_writes_only_what_changed(tracker: Tracker, runs: CountingRuns) -> None:
    run = tracker.start_run("r")
    run.log_params({"depth": 6, "lr": 0.1})
    run.set_tag("team", "risk")
    run.flush()
    run.log_param("depth", 6)  # the same value again: allowed, and not written twice
    run.log_metrics({"auc": 0.9, "precision": 0.8}, step=3)
    run.flush()
    run.flush()
    assert runs.batches == [(0, 2, 1), (2, 0, 0)]
    info = tracker.get_run(run.id)
    assert (info.params, info.tags) == ({"depth": "6", "lr": "0.1"}, {"team": "risk"})
    assert info.metrics == {"auc": 0.9, "precision": 0.8}
    assert tracker.metric_history(run.id, "auc")[0][0] == 3


def test_params_are_write_once_and_names_are_checked(tracker: Tracker) -> None:
    with tracker.start_run("bad") as run:
        run.log_param("depth", 3)
        with pytest.raises(ValidationError, match="param 'depth' was already logged as '3'"):
            run.log_param("depth", 4)
        with pytest.raises(ValidationError, match="metric 'loss' must be a number, got 'abc'"):
            run.log_metric("loss", "abc")  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="tag name must be a non-empty string"):
            run.set_tag("", 1)


@pytest.mark.parametrize(
    ("error", "status"),
    [(None, "FINISHED"), (ZeroDivisionError, "FAILED"), (KeyboardInterrupt, "KILLED")],
)
def test_leaving_the_block_ends_the_run_by_how_it_ended(
    tracker: Tracker, error: type[BaseException] | None, status: str
) -> None:
    run = tracker.start_run("r")
    with contextlib.suppress(*([error] if error else [])), run:
        run.log_metric("loss", 0.5)
        if error:
            raise error
    info = tracker.get_run(run.id)
    assert (info.status, info.metrics) == (status, {"loss": 0.5})
    assert info.end_time is not None
    run.end("FINISHED")
    assert tracker.get_run(run.id).status == status, "an ended run stays ended"


def test_datasets_and_files_are_recorded(tracker: Tracker, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with tracker.start_run("data") as run:
        fp = run.log_dataset("train", np.arange(6.0).reshape(3, 2))
        ref = run.log_artifact(notes, "reports/notes.txt")
        raw = run.log_bytes("raw.bin", b"\x00\x01")
    info = tracker.get_run(run.id)
    assert info.datasets == {
        "train": {"digest": fp.digest, "schema": [list(c) for c in fp.schema], "rows": 3}
    }
    assert info.artifacts == {"reports/notes.txt": ref.digest, "raw.bin": raw.digest}
    assert tracker.run_datasets(run.id) == {"train": fp}
    assert tracker.run_datasets("f" * 32) == {}


def test_runs_are_found_by_id_or_a_unique_prefix(tracker: Tracker) -> None:
    run = tracker.start_run("short")
    assert tracker.get_run(run.id[:8]).id == run.id
    with pytest.raises(RunNotFoundError, match="no run with id '0{32}'"):
        tracker.get_run("0" * 32)
    with pytest.raises(RunNotFoundError, match="too short: give at least 6 characters"):
        tracker.get_run("ab")
    with pytest.raises(RunNotFoundError, match="no run with id"):
        tracker.get_run("zzzzzzzz")


def test_an_ambiguous_prefix_asks_for_more_characters(runs: CountingRuns, tmp_path: Path) -> None:
    tracker = Tracker(runs, LocalArtifactStore(tmp_path))
    for suffix in ("1", "2"):
        runs.create_run(_info("abcdef" + suffix * 26))
    with pytest.raises(RunNotFoundError, match="matches several runs; give more characters"):
        tracker.get_run("abcdef")
    assert tracker.get_run("abcdef1").id == "abcdef" + "1" * 26


def test_search_upper_cases_the_status_and_parses_the_filter(tracker: Tracker) -> None:
    for i, model in enumerate(["lr", "rf", "lr"]):
        with tracker.start_run(f"r{i}", params={"model": model}) as run:
            run.log_metric("auc", 0.6 + i / 10)
    tracker.start_run("running")
    found = tracker.search_runs("metrics.auc > 0.65 and params.model = 'lr'", status="finished")
    assert [r.name for r in found] == ["r2"]
    assert len(tracker.list_runs(status="running")) == 1
    with pytest.raises(ValidationError, match="needs a number"):
        tracker.search_runs("metrics.auc > high")


def _info(run_id: str) -> RunInfo:
    return RunInfo(run_id, "r", "default", "RUNNING", 0.0, None, None, None, None, {})
