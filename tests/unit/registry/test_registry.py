"""``Registry`` and ``Catalog`` over the in-memory repository: numbering, lineage,
aliases, tags and the errors people see, with no database."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from modelyard.errors import (
    AliasNotFoundError,
    ModelNotFoundError,
    UntrustedFormatError,
    ValidationError,
    VersionNotFoundError,
)
from modelyard.registry import InMemoryRegistryRepository, Registry
from modelyard.registry.flavours import LoadOptions
from modelyard.store.artifacts import LocalArtifactStore
from modelyard.tracking import InMemoryRunRepository, Tracker

FEATURES = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def model() -> LinearRegression:
    return LinearRegression().fit(FEATURES, FEATURES @ np.array([1.0, -2.0, 0.5]))


@pytest.fixture
def artifacts(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "artifacts")


@pytest.fixture
def tracker(artifacts: LocalArtifactStore) -> Tracker:
    return Tracker(InMemoryRunRepository(), artifacts)


@pytest.fixture
def registry(artifacts: LocalArtifactStore, tracker: Tracker) -> Registry:
    return Registry(InMemoryRegistryRepository(), artifacts, runs=tracker, user="ana")


def register(registry: Registry, model: LinearRegression, parent_version: int | None = None) -> int:
    # pickle: the quickest format to write and load, so these tests stay fast
    version = registry.register(
        "reg", model, FEATURES, flavour="pickle", trusted=True, parent_version=parent_version
    )
    return version.version


def test_versions_are_numbered_and_carry_what_they_were_given(
    registry: Registry, tracker: Tracker, model: LinearRegression
) -> None:
    with tracker.start_run("train") as run:
        fp = run.log_dataset("train", FEATURES)
    first = registry.register(
        "reg",
        model,
        FEATURES,
        flavour="pickle",
        trusted=True,
        run=run,
        metrics={"r2": 0.99},
        tags={"team": 7},  # type: ignore[dict-item]
        description="first",
    )
    second = registry.register(
        "reg", model, FEATURES, flavour="pickle", trusted=True, parent_version=1
    )
    assert (first.version, second.version, second.parent_version) == (1, 2, 1)
    assert (first.run_id, first.created_by, first.description) == (run.id, "ana", "first")
    assert first.metrics == {"r2": 0.99}
    assert first.tags == {"team": "7"}
    assert first.lineage["run_datasets"] == {"train": {"digest": fp.digest, "rows": 40}}
    assert first.lineage["data"]["rows"] == 40
    assert "run_datasets" not in second.lineage, "no run, no run datasets"
    assert first.signature.input_names == ["f0", "f1", "f2"]
    assert registry.get_model("reg").latest_version == 2
    assert [v.version for v in registry.list_versions("reg")] == [1, 2]
    assert registry.profile("reg", 1)["features"]["f0"]["kind"] == "numeric"


def test_a_parent_must_exist_before_its_child(registry: Registry, model: LinearRegression) -> None:
    with pytest.raises(VersionNotFoundError, match="parent version 1 of 'reg' does not exist"):
        register(registry, model, parent_version=1)
    with pytest.raises(ModelNotFoundError, match="no registered model named 'reg'"):
        registry.get_model("reg")


def test_without_tracking_the_lineage_names_only_the_data(
    artifacts: LocalArtifactStore, tracker: Tracker, model: LinearRegression
) -> None:
    registry = Registry(InMemoryRegistryRepository(), artifacts)
    with tracker.start_run("train") as run:
        run.log_dataset("train", FEATURES)
    version = registry.register("reg", model, FEATURES, flavour="pickle", trusted=True, run=run)
    assert set(version.lineage) == {"data", "trusted"}  # the trust mark, not tracking's
    assert version.run_id == run.id
    assert version.created_by is None


def test_aliases_move_with_history_and_resolve(registry: Registry, model: LinearRegression) -> None:
    for _ in range(2):
        register(registry, model)
    registry.set_alias("reg", "champion", 1, reason="first release")
    move = registry.set_alias("reg", "champion", 2, actor="bo", reason="better")
    assert (move.from_version, move.to_version, move.actor) == (1, 2, "bo")
    assert registry.resolve("reg@champion") == ("reg", 2)
    assert registry.resolve("reg") == ("reg", 2)
    assert registry.resolve("reg/1") == ("reg", 1)
    assert registry.get_version("reg", 2).aliases == ("champion",)
    history = registry.alias_history("reg", "champion")
    assert [(m.from_version, m.to_version, m.actor) for m in history] == [
        (None, 1, "ana"),
        (1, 2, "bo"),
    ]
    removed = registry.delete_alias("reg", "champion", reason="retired")
    assert (removed.from_version, removed.to_version) == (2, None)
    with pytest.raises(AliasNotFoundError, match="model 'reg' has no alias 'champion'"):
        registry.resolve("reg@champion")
    with pytest.raises(AliasNotFoundError, match="model 'reg' has no alias 'champion'"):
        registry.delete_alias("reg", "champion")


def test_unknown_names_raise_typed_errors(registry: Registry, model: LinearRegression) -> None:
    with pytest.raises(ModelNotFoundError, match="no registered model named 'ghost'"):
        registry.resolve("ghost@champion")
    with pytest.raises(ModelNotFoundError, match="no registered model named 'ghost'"):
        registry.alias_history("ghost")
    register(registry, model)
    with pytest.raises(VersionNotFoundError, match="model 'reg' has no version 9"):
        registry.get_version("reg", 9)
    with pytest.raises(VersionNotFoundError, match="model 'reg' has no version 9"):
        registry.resolve("reg/9")
    with pytest.raises(VersionNotFoundError, match="model 'reg' has no version 9"):
        registry.set_alias("reg", "champion", 9)
    with pytest.raises(ValidationError, match="alias 'Bad Alias' is not allowed"):
        registry.set_alias("reg", "Bad Alias", 1)
    with pytest.raises(ModelNotFoundError, match="no registered model named 'ghost'"):
        registry.set_model_tag("ghost", "team", "risk")
    with pytest.raises(ModelNotFoundError, match="no registered model named 'ghost'"):
        registry.set_description("ghost", "")


def test_model_tags_and_description(registry: Registry, model: LinearRegression) -> None:
    register(registry, model)
    registry.set_model_tag("reg", "tier", 1)  # type: ignore[arg-type]
    registry.set_description("reg", "a regressor")
    found = registry.get_model("reg")
    assert (found.tags, found.description) == ({"tier": "1"}, "a regressor")
    assert [m.name for m in registry.list_models()] == ["reg"]


def test_a_version_loads_by_alias_and_predicts_like_the_original(
    registry: Registry, model: LinearRegression
) -> None:
    register(registry, model)
    registry.set_alias("reg", "champion", 1)
    loaded = registry.load("reg@champion", trusted=True)
    assert (loaded.name, loaded.version) == ("reg", 1)
    np.testing.assert_allclose(
        loaded.predict(FEATURES[:5])["prediction"].ravel(), model.predict(FEATURES[:5]), rtol=1e-5
    )


def test_the_same_fitted_model_stored_as_skops_gives_the_same_bytes() -> None:
    """skops names archive entries after object ids and dates them; the flavour renames
    and re-dates them, so a retrain with the same seed and data stores identical bytes."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from modelyard.registry.flavours.skops import SkopsFlavour

    labels = (FEATURES[:, 0] > 0).astype(int)

    def fitted() -> object:
        forest = RandomForestClassifier(n_estimators=3, random_state=0)
        return make_pipeline(StandardScaler(), forest).fit(FEATURES, labels)

    flavour = SkopsFlavour()
    first, second = (flavour.serialize(fitted(), None, None) for _ in range(2))  # type: ignore[arg-type]
    assert first == second
    loaded = flavour.load(first, None, LoadOptions(trusted=True))  # type: ignore[arg-type]
    assert np.array_equal(loaded.estimator.predict(FEATURES), fitted().predict(FEATURES))  # type: ignore[attr-defined]


def test_trusted_registration_marks_the_version_with_who_and_why(
    artifacts: LocalArtifactStore, model: LinearRegression
) -> None:
    registry = Registry(InMemoryRegistryRepository(), artifacts, user="ana")
    marked = registry.register(
        "reg", model, FEATURES, flavour="pickle", trusted=True, trusted_reason="our CI built it"
    )
    assert marked.trust == {"by": "ana", "at": marked.created_at, "reason": "our CI built it"}
    assert registry.load("reg/1", trusted=True).predictor is not None
    plain = registry.register("reg", model, FEATURES)
    assert plain.trust is None


def test_a_pickle_version_not_marked_trusted_is_refused_even_to_a_trusting_caller(
    artifacts: LocalArtifactStore, model: LinearRegression
) -> None:
    repository = InMemoryRegistryRepository()
    registry = Registry(repository, artifacts)
    registry.register("reg", model, FEATURES, flavour="pickle", trusted=True)
    # a pickle version from before trust marks (or written around the registry)
    unmarked = registry.prepare(model, FEATURES, flavour="pickle", trusted=True)
    registry.register_prepared("reg", unmarked)
    with pytest.raises(UntrustedFormatError, match="reg/2 is stored as pickle.*not marked trusted"):
        registry.load("reg/2", trusted=True)
    with pytest.raises(UntrustedFormatError, match="can run arbitrary code"):
        registry.load("reg/1")


def test_models_come_a_page_at_a_time_by_name(registry: Registry, model: LinearRegression) -> None:
    for name in ("b", "a", "c"):
        registry.register(name, model, FEATURES, flavour="pickle", trusted=True)
    first = registry.models_page(limit=2)
    assert ([m.name for m in first.models], first.next_page_token) == (["a", "b"], "b")
    last = registry.models_page(limit=2, page_token=first.next_page_token)
    assert ([m.name for m in last.models], last.next_page_token) == (["c"], None)
    with pytest.raises(ValidationError, match="page_token '!!' is not one this command"):
        registry.models_page(page_token="!!")
    with pytest.raises(ValidationError, match="limit must be at least 1"):
        registry.models_page(limit=0)
