"""The tracking contract, run on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelyard.errors import RunNotFoundError, UnsafePathError, ValidationError
from modelyard.yard import Yard


def test_a_run_records_params_metrics_tags_and_environment(yard: Yard) -> None:
    with yard.start_run("train", seed=7, experiment="fraud", tags={"team": "risk"}) as run:
        run.log_params({"depth": 6, "lr": 0.1})
        for step in range(5):
            run.log_metric("loss", 1.0 / (step + 1))
        run.log_metrics({"auc": 0.91, "precision": 0.8}, step=4)
    info = yard.tracking.get_run(run.id)
    assert info.status == "FINISHED"
    assert info.end_time is not None
    assert info.end_time >= info.start_time
    assert info.params == {"depth": "6", "lr": "0.1"}
    assert info.metrics == {"loss": 0.2, "auc": 0.91, "precision": 0.8}
    assert info.tags == {"team": "risk"}
    assert info.seed == 7
    assert info.environment["python"].count(".") == 2
    assert "numpy" in info.environment["packages"]
    history = yard.tracking.metric_history(run.id, "loss")
    assert [(step, value) for step, value, _ in history] == [(i, 1.0 / (i + 1)) for i in range(5)]


def test_a_failing_block_marks_the_run_failed_and_keeps_what_was_logged(yard: Yard) -> None:
    run = yard.start_run("broken")

    def train() -> None:
        with run:
            run.log_metric("loss", 0.5)
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        train()
    info = yard.tracking.get_run(run.id)
    assert info.status == "FAILED"
    assert info.metrics == {"loss": 0.5}


def test_seeding_makes_random_generators_repeat(yard: Yard) -> None:
    draws = []
    for _ in range(2):
        with yard.start_run("seeded", seed=123):
            draws.append((random.random(), float(np.random.rand())))
    assert draws[0] == draws[1]


def test_data_fingerprints_and_artifacts_are_recorded(yard: Yard, tmp_path: Path) -> None:
    frame = pd.DataFrame({"amount": [1.5, 2.5, 3.5], "country": ["fr", "de", "fr"]})
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with yard.start_run("data") as run:
        fp = run.log_dataset("train", frame)
        ref = run.log_artifact(notes, "reports/notes.txt")
        with pytest.raises(UnsafePathError, match="climbs out"):
            run.log_artifact(notes, "../../escape.txt")
    info = yard.tracking.get_run(run.id)
    assert info.datasets["train"] == {
        "digest": fp.digest,
        "schema": [["amount", "float64"], ["country", "object"]],
        "rows": 3,
    }
    assert info.artifacts == {"reports/notes.txt": ref.digest}


def test_search_filters_on_latest_metrics_params_and_tags(yard: Yard) -> None:
    for i, model in enumerate(["lr", "rf", "lr"]):
        with yard.start_run(f"r{i}", params={"model": model}, tags={"i": i}) as run:
            run.log_metric("auc", 0.5)
            run.log_metric("auc", 0.6 + i / 10)
    found = yard.tracking.search_runs("metrics.auc > 0.65 and params.model = 'lr'")
    assert [r.name for r in found] == ["r2"]
    assert found[0].metrics["auc"] == pytest.approx(0.8)
    assert {r.name for r in yard.tracking.search_runs("tags.i != '1'")} == {"r0", "r2"}
    assert len(yard.tracking.search_runs(limit=2)) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("auc > 0.5", "cannot read filter condition"),
        ("metrics.auc > high", "needs a number"),
        ("params.model > 'a'", "can only be compared with = or !="),
    ],
)
def test_bad_filters_say_how_to_write_them(yard: Yard, text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        yard.tracking.search_runs(text)


def test_bad_logging_input_is_refused_with_the_name(yard: Yard) -> None:
    with yard.start_run("bad") as run:
        with pytest.raises(ValidationError, match="metric 'loss' must be a number, got 'abc'"):
            run.log_metric("loss", "abc")  # type: ignore[arg-type]
        run.log_param("depth", 3)
        with pytest.raises(ValidationError, match="param 'depth' was already logged"):
            run.log_param("depth", 4)
        with pytest.raises(ValidationError, match="metric name must be a non-empty string"):
            run.log_metric("", 1.0)


def test_unknown_runs(yard: Yard) -> None:
    with pytest.raises(RunNotFoundError, match="no run with id"):
        yard.tracking.get_run("0" * 32)
    with pytest.raises(RunNotFoundError, match="too short"):
        yard.tracking.get_run("ab")


def test_run_ids_can_be_abbreviated(yard: Yard) -> None:
    with yard.start_run("short") as run:
        pass
    assert yard.tracking.get_run(run.id[:8]).id == run.id


def test_many_points_are_written_in_batches(yard: Yard) -> None:
    with yard.start_run("many") as run:
        for i in range(25_000):
            run.log_metric("loss", float(i))
    assert len(yard.tracking.metric_history(run.id, "loss")) == 25_000


def test_latest_metric_is_the_highest_step_not_the_last_written(yard: Yard) -> None:
    with yard.start_run("steps") as run:
        run.log_metric("auc", 0.9, step=5)
        run.log_metric("auc", 0.1, step=3)
        run.flush()
        run.log_metric("auc", 0.2, step=4)
    assert yard.tracking.get_run(run.id).metrics == {"auc": 0.9}
    assert [r.id for r in yard.tracking.search_runs("metrics.auc > 0.5")] == [run.id]
