"""The ``RunRepository`` contract: the in-memory fake and the SQL adapter (SQLite,
PostgreSQL) answer the same calls with the same values."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from modelyard.errors import RejectedWriteError
from modelyard.store.artifacts import ArtifactRef
from modelyard.store.database import Database
from modelyard.tracking import InMemoryRunRepository, RunInfo, RunQuery, RunRepository, parse_filter
from modelyard.tracking.fingerprint import DataFingerprint
from modelyard.tracking.sql import SqlRunRepository

T0 = 1_700_000_000.0


@pytest.fixture
def runs(contract_db: Database | None) -> RunRepository:
    """The fake, then the SQL adapter on each backend (``contract_db``)."""
    return InMemoryRunRepository() if contract_db is None else SqlRunRepository(contract_db)


RUN = RunInfo(
    id="0" * 32,
    name="train",
    experiment="default",
    status="RUNNING",
    start_time=T0,
    end_time=None,
    seed=7,
    user="ana",
    git_commit="abc123",
    environment={"python": "3.11.9", "packages": {"numpy": "2.0"}, "shape": (1, 2)},
)


def new_run(run_id: str, start: float = T0, **fields: Any) -> RunInfo:
    return replace(RUN, id=run_id, start_time=start, **fields)


def logged(runs: RunRepository, rid: str) -> RunInfo:
    found = runs.get_run(rid)
    assert found is not None, f"no run {rid}"
    return found


def run_id(n: int) -> str:
    return f"{n:032x}"


def test_a_created_run_reads_back_with_its_environment_as_json(runs: RunRepository) -> None:
    runs.create_run(new_run(run_id(1)))
    found = runs.get_run(run_id(1))
    assert found == new_run(
        run_id(1),
        environment={"python": "3.11.9", "packages": {"numpy": "2.0"}, "shape": [1, 2]},
    )
    assert runs.get_run(run_id(2)) is None


def test_a_run_id_is_taken_once(runs: RunRepository) -> None:
    runs.create_run(new_run(run_id(1)))
    with pytest.raises(RejectedWriteError, match="refused the write"):
        runs.create_run(new_run(run_id(1)))


def test_batches_set_params_and_tags_and_append_metric_points(runs: RunRepository) -> None:
    rid = run_id(1)
    runs.create_run(new_run(rid))
    runs.write_batch(
        rid,
        [(rid, "loss", 0.9, 0, T0), (rid, "loss", 0.5, 1, T0 + 1), (rid, "auc", 0.7, 0, T0)],
        {"depth": "6", "lr": "0.1"},
        {"team": "risk"},
    )
    runs.write_batch(rid, [(rid, "loss", 0.4, 2, T0 + 2)], {"lr": "0.2"}, {"team": "fraud"})
    runs.write_batch(rid, [], {}, {})
    found = runs.get_run(rid)
    assert found is not None
    assert found.params == {"depth": "6", "lr": "0.2"}
    assert found.tags == {"team": "fraud"}
    assert found.metrics == {"loss": 0.4, "auc": 0.7}
    assert runs.metric_history(rid, "loss") == [(0, 0.9, T0), (1, 0.5, T0 + 1), (2, 0.4, T0 + 2)]
    assert runs.metric_history(rid, "missing") == []


def test_the_latest_metric_is_the_highest_step_then_the_last_written(
    runs: RunRepository,
) -> None:
    rid = run_id(1)
    runs.create_run(new_run(rid))
    runs.write_batch(rid, [(rid, "auc", 0.9, 5, T0), (rid, "auc", 0.1, 3, T0 + 1)], {}, {})
    runs.write_batch(rid, [(rid, "auc", 0.2, 4, T0 + 2)], {}, {})
    assert logged(runs, rid).metrics == {"auc": 0.9}
    runs.write_batch(rid, [(rid, "auc", 0.3, 5, T0 + 3), (rid, "auc", 0.4, 5, T0 + 4)], {}, {})
    assert logged(runs, rid).metrics == {"auc": 0.4}
    history = runs.metric_history(rid, "auc")
    assert [(step, value) for step, value, _ in history] == [
        (3, 0.1),
        (4, 0.2),
        (5, 0.9),
        (5, 0.3),
        (5, 0.4),
    ]


def test_datasets_and_artifacts_are_recorded_and_replaced(runs: RunRepository) -> None:
    rid = run_id(1)
    runs.create_run(new_run(rid))
    first = DataFingerprint("a" * 64, (("amount", "float64"),), 3)
    second = DataFingerprint("b" * 64, (("amount", "float64"), ("country", "object")), 5)
    runs.record_dataset(rid, "train", first)
    runs.record_dataset(rid, "train", second)
    runs.record_dataset(rid, "test", first)
    runs.record_artifact(rid, "reports/notes.txt", ArtifactRef("c" * 64, 5))
    runs.record_artifact(rid, "reports/notes.txt", ArtifactRef("d" * 64, 6))
    found = runs.get_run(rid)
    assert found is not None
    assert found.datasets == {
        "train": {
            "digest": "b" * 64,
            "schema": [["amount", "float64"], ["country", "object"]],
            "rows": 5,
        },
        "test": {"digest": "a" * 64, "schema": [["amount", "float64"]], "rows": 3},
    }
    assert found.artifacts == {"reports/notes.txt": "d" * 64}
    assert runs.datasets(rid) == {"train": second, "test": first}
    assert runs.datasets(run_id(2)) == {}


def test_writes_about_an_unknown_run_are_refused(runs: RunRepository) -> None:
    ghost = run_id(9)
    with pytest.raises(RejectedWriteError, match="refused the write"):
        runs.write_batch(ghost, [], {"depth": "6"}, {})
    with pytest.raises(RejectedWriteError, match="refused the write"):
        runs.write_batch(ghost, [(ghost, "loss", 1.0, 0, T0)], {}, {})
    with pytest.raises(RejectedWriteError, match="refused the write"):
        runs.record_dataset(ghost, "train", DataFingerprint("a" * 64, (), 0))
    with pytest.raises(RejectedWriteError, match="refused the write"):
        runs.record_artifact(ghost, "notes.txt", ArtifactRef("a" * 64, 1))


def test_ending_a_run_sets_its_status_and_end_time(runs: RunRepository) -> None:
    runs.create_run(new_run(run_id(1)))
    runs.end_run(run_id(1), "FAILED", T0 + 10)
    found = runs.get_run(run_id(1))
    assert found is not None
    assert (found.status, found.end_time) == ("FAILED", T0 + 10)


def test_ids_are_found_by_prefix(runs: RunRepository) -> None:
    for rid in ("abcdef01" + "0" * 24, "abcdef02" + "0" * 24, "fedcba01" + "0" * 24):
        runs.create_run(new_run(rid))
    assert runs.run_ids_starting_with("fedcba", limit=2) == ["fedcba01" + "0" * 24]
    assert sorted(runs.run_ids_starting_with("abcdef", limit=5)) == [
        "abcdef01" + "0" * 24,
        "abcdef02" + "0" * 24,
    ]
    assert len(runs.run_ids_starting_with("abcdef", limit=1)) == 1
    assert runs.run_ids_starting_with("0123456", limit=2) == []


def test_search_filters_newest_first_with_params_and_latest_metrics(
    runs: RunRepository,
) -> None:
    for i, model in enumerate(["lr", "rf", "lr", "gbm"]):
        rid = run_id(i)
        experiment = "other" if i == 3 else "fraud"
        runs.create_run(new_run(rid, start=T0 + i, experiment=experiment))
        tags = {"i": str(i)} if i < 2 else {}
        runs.write_batch(rid, [(rid, "auc", 0.6 + i / 10, 0, T0)], {"model": model}, tags)
    runs.end_run(run_id(1), "FINISHED", T0 + 5)

    def names(
        text: str = "",
        *,
        experiment: str | None = None,
        status: str | None = None,
        limit: int = 1000,
    ) -> list[str]:
        query = RunQuery(parse_filter(text), experiment=experiment, status=status, limit=limit)
        return [r.id for r in runs.search(query)]

    assert names() == [run_id(3), run_id(2), run_id(1), run_id(0)]
    assert names(limit=2) == [run_id(3), run_id(2)]
    assert names(experiment="fraud") == [run_id(2), run_id(1), run_id(0)]
    assert names(status="FINISHED") == [run_id(1)]
    assert names("metrics.auc > 0.65 and params.model = 'lr'") == [run_id(2)]
    assert names("metrics.auc <= 0.7") == [run_id(1), run_id(0)]
    assert names("metrics.loss < 1") == []
    # a run without the tag matches no condition on it, != included
    assert names("tags.i != '1'") == [run_id(0)]
    assert names("params.model != 'lr'") == [run_id(3), run_id(1)]
    found = runs.search(RunQuery(parse_filter("params.model = 'rf'")))
    assert [(r.params, r.metrics, r.tags, r.status) for r in found] == [
        ({"model": "rf"}, {"auc": pytest.approx(0.7)}, {}, "FINISHED")
    ]


def test_pages_after_a_key_cover_every_run_once_equal_start_times_included(
    runs: RunRepository,
) -> None:
    # Three runs share a start time: the id orders them, so no page repeats or skips one.
    starts = [T0, T0 + 1, T0 + 1, T0 + 1, T0 + 2, T0 + 3]
    for i, start in enumerate(starts):
        runs.create_run(new_run(run_id(i), start=start))
        runs.write_batch(run_id(i), [(run_id(i), "auc", i / 10, 0, T0)], {}, {})
    seen: list[str] = []
    after = None
    while True:
        page = runs.search(RunQuery(limit=2, after=after))
        if not page:
            break
        seen += [r.id for r in page]
        after = (page[-1].start_time, page[-1].id)
    expected = sorted(range(6), key=lambda i: (starts[i], run_id(i)), reverse=True)
    assert seen == [run_id(i) for i in expected]
    # a filter and a page bound together
    query = RunQuery(parse_filter("metrics.auc >= 0.2"), limit=2, after=(T0 + 2, run_id(4)))
    assert [r.id for r in runs.search(query)] == [run_id(3), run_id(2)]
