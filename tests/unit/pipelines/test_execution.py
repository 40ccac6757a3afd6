"""Steps cached by code, parameters and data content; runs tracked; failures named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelyard.errors import StepFailedError, ValidationError
from modelyard.pipelines import Candidate, InMemoryPipelineRepository, StepCache, run_pipeline, step
from modelyard.pipelines.codecs import NotCacheable, decode, encode
from modelyard.pipelines.execution import PipelineContext
from modelyard.store.artifacts import LocalArtifactStore
from modelyard.tracking import Tracker
from modelyard.tracking.memory import InMemoryRunRepository

calls: list[str] = []


@step(cache=False)
def read_table(path: Path) -> dict[str, np.ndarray]:
    calls.append("read")
    with np.load(path) as data:
        return {"x": data["x"], "y": data["y"]}


@step
def scale(table: dict[str, np.ndarray], factor: float) -> dict[str, np.ndarray]:
    calls.append("scale")
    return {"x": table["x"] * factor, "y": table["y"]}


@step(version="1")
def fit(table: dict[str, np.ndarray], seed: int) -> dict[str, object]:
    calls.append("fit")
    rng = np.random.default_rng(seed)
    return {"weights": rng.normal(size=table["x"].shape[1]), "seed": seed}


class Opaque:
    """Neither data nor a model format: no safe stored form."""


@step
def opaque(table: dict[str, np.ndarray]) -> Opaque:
    calls.append("opaque")
    return Opaque()


@pytest.fixture
def cache(tmp_path: Path) -> StepCache:
    return StepCache(InMemoryPipelineRepository(), LocalArtifactStore(tmp_path / "artifacts"))


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "table.npz"
    np.savez(path, x=np.arange(12.0).reshape(6, 2), y=np.arange(6))
    return path


def pipeline(table: Path, factor: float = 2.0, seed: int = 0) -> list[tuple[str, str]]:
    ctx = PipelineContext(seed=seed, window_start=0, window_end=1, cache=CACHE[0])
    scaled = ctx.run(scale, ctx.run(read_table, table), factor=factor)
    ctx.run(fit, scaled, seed=seed)
    return [(s.step, s.outcome) for s in ctx.steps]


CACHE: list[StepCache] = []


@pytest.fixture(autouse=True)
def _fresh(cache: StepCache) -> None:
    calls.clear()
    CACHE[:] = [cache]


def test_a_rerun_recomputes_only_what_changed_and_says_so(table: Path) -> None:
    assert pipeline(table) == [
        ("read_table", "uncached"),
        ("scale", "computed"),
        ("fit", "computed"),
    ]
    assert pipeline(table) == [("read_table", "uncached"), ("scale", "cached"), ("fit", "cached")]
    assert pipeline(table, seed=1) == [
        ("read_table", "uncached"),
        ("scale", "cached"),
        ("fit", "computed"),
    ]
    assert calls == ["read", "scale", "fit", "read", "read", "fit"]


def test_a_table_changed_under_the_same_name_is_not_served_stale(table: Path) -> None:
    """kubeflow/pipelines#4857: the key is the data's content, not its name."""
    pipeline(table)
    np.savez(table, x=np.ones((6, 2)), y=np.arange(6))
    assert pipeline(table) == [
        ("read_table", "uncached"),
        ("scale", "computed"),
        ("fit", "computed"),
    ]


def test_identical_output_from_changed_parameters_keeps_the_next_step_cached(table: Path) -> None:
    """A step is keyed on the content it receives: same input, no rerun."""
    pipeline(table, factor=2.0)
    calls.clear()
    ctx = PipelineContext(seed=0, window_start=0, window_end=1, cache=CACHE[0])
    doubled = ctx.run(read_table, table)
    same = {"x": doubled["x"] * 2.0, "y": doubled["y"]}
    ctx.run(fit, same, seed=0)
    assert [s.outcome for s in ctx.steps] == ["uncached", "cached"]


def test_a_bumped_step_version_recomputes(table: Path) -> None:
    pipeline(table)
    bumped = step(version="2")(fit.fn)
    ctx = PipelineContext(seed=0, window_start=0, window_end=1, cache=CACHE[0])
    ctx.run(bumped, ctx.run(scale, ctx.run(read_table, table), factor=2.0), seed=0)
    assert [s.outcome for s in ctx.steps] == ["uncached", "cached", "computed"]


def test_an_output_without_a_safe_form_runs_every_time_and_says_why(table: Path) -> None:
    for _ in range(2):
        ctx = PipelineContext(seed=0, window_start=0, window_end=1, cache=CACHE[0])
        ctx.run(opaque, ctx.run(read_table, table))
        record = ctx.steps[-1]
        assert record.outcome == "uncached"
        assert "no safe stored form for a" in record.note
    assert calls.count("opaque") == 2


def test_an_argument_that_cannot_be_fingerprinted_is_refused_by_name() -> None:
    ctx = PipelineContext(seed=0, window_start=0, window_end=1, cache=CACHE[0])
    with pytest.raises(ValidationError, match="scale argument 0 of type Opaque cannot be"):
        ctx.run(scale, Opaque(), factor=1.0)


def test_only_marked_steps_run() -> None:
    ctx = PipelineContext(seed=0, window_start=0, window_end=1)
    with pytest.raises(ValidationError, match="ctx.run takes a function marked @step"):
        ctx.run(len, [1])


def test_a_run_is_tracked_with_its_seed_steps_data_and_parent(table: Path) -> None:
    tracker = Tracker(InMemoryRunRepository(), LocalArtifactStore(table.parent / "runs"))

    def train(ctx: PipelineContext) -> Candidate:
        data = ctx.run(read_table, table)
        ctx.run(fit, data, seed=ctx.seed)
        return Candidate(None, data["x"], data["x"][:2], data["y"][:2], metrics={"auc": 0.9})

    outcome = run_pipeline(
        train, name="nightly", tracker=tracker, seed=7, window_start=10.0, window_end=20.0,
        cache=CACHE[0], parent_run="abc123",
    )  # fmt: skip
    run = tracker.get_run(outcome.run_id)
    assert (run.status, run.seed, run.experiment) == ("FINISHED", 7, "retraining")
    assert run.params == {"seed": "7", "window_start": "10.0", "window_end": "20.0"}
    assert run.tags["parent_run"] == "abc123"
    assert run.tags["step.read_table"] == "uncached"
    assert run.tags["step.fit"] == "computed"
    assert run.tags["code_version"] == outcome.code_version
    assert set(run.datasets) == {"features", "holdout"}
    assert run.metrics["auc"] == 0.9


def test_a_step_that_raises_fails_the_run_naming_the_step(table: Path) -> None:
    tracker = Tracker(InMemoryRunRepository(), LocalArtifactStore(table.parent / "runs"))

    @step
    def explode(data: dict[str, np.ndarray]) -> None:
        raise RuntimeError("no positive class in the window")

    def train(ctx: PipelineContext) -> Candidate:
        ctx.run(explode, ctx.run(read_table, table))
        raise AssertionError("not reached")

    with pytest.raises(
        StepFailedError, match="step 'explode' failed: RuntimeError: no positive"
    ) as caught:
        run_pipeline(train, name="nightly", tracker=tracker, seed=0, window_start=0, window_end=1)
    assert caught.value.step == "explode"
    (found,) = tracker.search_runs()
    run = tracker.get_run(found.id)
    assert run.status == "FAILED"
    assert "no positive class" in run.tags["error"]


def test_a_pipeline_must_return_a_candidate(table: Path) -> None:
    tracker = Tracker(InMemoryRunRepository(), LocalArtifactStore(table.parent / "runs"))
    with pytest.raises(StepFailedError, match="returned dict, not a Candidate"):
        run_pipeline(
            lambda ctx: {}, name="p", tracker=tracker, seed=0, window_start=0, window_end=1
        )  # type: ignore[arg-type,return-value]


def test_outputs_round_trip_without_pickle() -> None:
    from sklearn.linear_model import LogisticRegression

    x = np.arange(20.0).reshape(10, 2)
    model = LogisticRegression().fit(x, np.arange(10) % 2)
    value = {
        "model": model,
        "parts": (x, [1, "a", None, 2.5], np.array(["u", "v"], dtype=object)),
        "scalar": np.float32(1.5),
    }
    back = decode(encode(value))
    assert np.array_equal(back["model"].predict(x), model.predict(x))
    assert np.array_equal(back["parts"][0], x)
    assert back["parts"][1] == [1, "a", None, 2.5]
    assert back["parts"][2].tolist() == ["u", "v"]
    assert back["scalar"] == np.float32(1.5)
    with pytest.raises(NotCacheable, match="keys other than strings"):
        encode({1: "a"})
    with pytest.raises(NotCacheable, match="object array holding other values"):
        encode(np.array([object()], dtype=object))


def test_sources_are_handed_in_by_name() -> None:
    store = object()
    ctx = PipelineContext(seed=0, window_start=0, window_end=1, sources={"features": store})
    assert ctx.source("features") is store
    with pytest.raises(ValidationError, match="no source 'labelled_log'; it has: features"):
        ctx.source("labelled_log")
