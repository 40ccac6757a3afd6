"""The registry's ports: the in-memory fake and the SQL adapters (SQLite, PostgreSQL)
answer the same calls with the same values and the same errors.

How version numbers hold up when several processes register at once is
``tests/integration/store/test_concurrency.py``'s subject; here threads share one
repository.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import pytest

from modelyard.errors import AliasNotFoundError, ModelNotFoundError, VersionNotFoundError
from modelyard.registry import (
    AliasMove,
    FieldSpec,
    InMemoryRegistryRepository,
    ModelRef,
    ModelVersion,
    RegisteredModel,
    RegistryRepository,
    Signature,
    VersionDraft,
)
from modelyard.registry.sql import SqlRegistryRepository
from modelyard.store.database import Database

T0 = 1_700_000_000.0


SIGNATURE = Signature(
    inputs=(
        FieldSpec("amount", "float32", minimum=0.0, maximum=10.0),
        FieldSpec("country", "object", categories=("de", "fr")),
    ),
    outputs=(FieldSpec("probabilities", "float32", shape=(2,)),),
    layout="columns",
)


@pytest.fixture
def models(contract_db: Database | None) -> RegistryRepository:
    """The fake, then the SQL adapter on each backend (``contract_db``)."""
    return (
        InMemoryRegistryRepository() if contract_db is None else SqlRegistryRepository(contract_db)
    )


def model_of(models: RegistryRepository, name: str) -> RegisteredModel:
    found = models.find_model(name)
    assert found is not None, f"no model {name!r}"
    return found


def version_of(models: RegistryRepository, name: str, version: int) -> ModelVersion:
    found = models.find_version(name, version)
    assert found is not None, f"no version {name}/{version}"
    return found


# run_id stays None: the database checks that it names a run, the fake cannot.
DRAFT = VersionDraft(
    flavour="onnx",
    artifact_digest="a" * 64,
    artifact_size=1234,
    signature=SIGNATURE,
    profile_digest="b" * 64,
    metrics={"auc": 0.9},
    lineage={"data": {"digest": "c" * 64, "schema": (("amount", "float32"),)}},
    run_id=None,
    parent_version=None,
    description="first",
    created_at=T0,
    created_by="ana",
    tags={"team": "risk"},
)


def draft(at: float = T0, **fields: Any) -> VersionDraft:
    return replace(DRAFT, created_at=at, **fields)


def test_versions_are_numbered_from_one_and_read_back_as_stored(
    models: RegistryRepository,
) -> None:
    assert models.add_version("fraud", draft(T0)) == 1
    assert models.add_version("fraud", draft(T0 + 5, parent_version=1, tags={})) == 2
    assert models.add_version("other", draft(T0 + 6)) == 1
    first = models.find_version("fraud", 1)
    assert first is not None
    assert (first.model, first.version, first.flavour) == ("fraud", 1, "onnx")
    assert (first.artifact_digest, first.artifact_size, first.profile_digest) == (
        "a" * 64,
        1234,
        "b" * 64,
    )
    assert first.signature == SIGNATURE
    assert first.metrics == {"auc": 0.9}
    assert first.lineage == {"data": {"digest": "c" * 64, "schema": [["amount", "float32"]]}}
    assert (first.run_id, first.parent_version, first.description) == (None, None, "first")
    assert (first.created_at, first.created_by) == (T0, "ana")
    assert (first.tags, first.aliases) == ({"team": "risk"}, ())
    second = models.find_version("fraud", 2)
    assert second is not None
    assert (second.parent_version, second.tags) == (1, {})
    assert models.find_version("fraud", 3) is None
    assert models.find_version("ghost", 1) is None
    model = models.find_model("fraud")
    assert model is not None
    assert (model.name, model.description, model.created_at, model.updated_at) == (
        "fraud",
        "",
        T0,
        T0 + 5,
    )
    assert (model.latest_version, model.aliases, model.tags) == (2, {}, {})
    assert models.find_model("ghost") is None
    assert [m.name for m in models.list_models()] == ["fraud", "other"]


def test_a_refused_number_leaves_nothing_behind(models: RegistryRepository) -> None:
    with pytest.raises(VersionNotFoundError, match="parent version 1 of 'fraud' does not exist"):
        models.add_version("fraud", draft(parent_version=1))
    assert models.find_model("fraud") is None
    assert models.list_models() == []
    models.add_version("fraud", draft())
    with pytest.raises(VersionNotFoundError, match="parent version 2 of 'fraud' does not exist"):
        models.add_version("fraud", draft(T0 + 1, parent_version=2))
    model = models.find_model("fraud")
    assert model is not None
    assert (model.latest_version, model.updated_at) == (1, T0)


def test_references_resolve_to_a_version_an_alias_or_the_latest(
    models: RegistryRepository,
) -> None:
    for _ in range(3):
        models.add_version("fraud", draft())
    models.move_alias("fraud", "champion", 2, "ana", "", T0)
    assert models.resolve(ModelRef("fraud", version=3)) == 3
    assert models.resolve(ModelRef("fraud", version=4)) is None
    assert models.resolve(ModelRef("fraud", alias="champion")) == 2
    assert models.resolve(ModelRef("fraud", alias="challenger")) is None
    assert models.resolve(ModelRef("fraud")) == 3
    assert models.resolve(ModelRef("ghost")) is None
    assert models.resolve(ModelRef("ghost", alias="champion")) is None


def test_aliases_move_and_every_move_is_recorded(models: RegistryRepository) -> None:
    for _ in range(2):
        models.add_version("fraud", draft())
    first = models.move_alias("fraud", "champion", 1, "ana", "first release", T0 + 1)
    assert first == AliasMove("champion", None, 1, "ana", "first release", T0 + 1)
    models.move_alias("fraud", "challenger", 2, None, "", T0 + 2)
    moved = models.move_alias("fraud", "champion", 2, "bo", "better auc", T0 + 3)
    assert moved == AliasMove("champion", 1, 2, "bo", "better auc", T0 + 3)
    assert version_of(models, "fraud", 2).aliases == ("challenger", "champion")
    assert version_of(models, "fraud", 1).aliases == ()
    assert model_of(models, "fraud").aliases == {"challenger": 2, "champion": 2}
    removed = models.move_alias("fraud", "challenger", None, "cy", "retired", T0 + 4)
    assert removed == AliasMove("challenger", 2, None, "cy", "retired", T0 + 4)
    assert models.resolve(ModelRef("fraud", alias="challenger")) is None
    assert models.alias_history("fraud", "champion") == [first, moved]
    assert [m.alias for m in models.alias_history("fraud", None)] == [
        "champion",
        "challenger",
        "champion",
        "challenger",
    ]
    assert models.alias_history("ghost", None) == []


def test_alias_moves_that_cannot_happen_are_refused_and_not_recorded(
    models: RegistryRepository,
) -> None:
    models.add_version("fraud", draft())
    with pytest.raises(ModelNotFoundError, match="no registered model named 'ghost'"):
        models.move_alias("ghost", "champion", 1, None, "", T0)
    with pytest.raises(VersionNotFoundError, match="model 'fraud' has no version 9"):
        models.move_alias("fraud", "champion", 9, None, "", T0)
    with pytest.raises(AliasNotFoundError, match="model 'fraud' has no alias 'champion'"):
        models.move_alias("fraud", "champion", None, None, "", T0)
    assert models.alias_history("fraud", None) == []
    assert model_of(models, "fraud").aliases == {}


def test_model_tags_and_descriptions_are_set_on_known_models(models: RegistryRepository) -> None:
    models.add_version("fraud", draft())
    models.set_model_tag("fraud", "team", "risk")
    models.set_model_tag("fraud", "team", "fraud")
    models.set_model_tag("fraud", "tier", "1")
    models.set_description("fraud", "card fraud")
    model = models.find_model("fraud")
    assert model is not None
    assert (model.tags, model.description) == ({"team": "fraud", "tier": "1"}, "card fraud")
    with pytest.raises(ModelNotFoundError, match="no registered model named 'ghost'"):
        models.set_model_tag("ghost", "team", "risk")
    with pytest.raises(ModelNotFoundError, match="no registered model named 'ghost'"):
        models.set_description("ghost", "")


def test_concurrent_writers_get_distinct_consecutive_numbers(
    models: RegistryRepository,
) -> None:
    numbers: list[int] = []
    errors: list[BaseException] = []

    def register() -> None:
        try:
            for _ in range(3):
                numbers.append(models.add_version("shared", draft()))
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=register) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(numbers) == list(range(1, 13))
    assert model_of(models, "shared").latest_version == 12


def test_empty_fields_read_back_empty(models: RegistryRepository) -> None:
    given = draft(metrics={}, lineage={}, tags={}, description="", created_by=None)
    models.add_version("fraud", given)
    found = models.find_version("fraud", 1)
    assert found is not None
    assert (found.metrics, found.lineage, found.tags, found.created_by) == ({}, {}, {}, None)


def test_versions_come_newest_first_in_pages_with_their_tags_and_aliases(
    models: RegistryRepository,
) -> None:
    for i in range(7):
        models.add_version("fraud", draft(T0 + i, tags={"i": str(i + 1)}))
    models.add_version("other", draft(T0))
    models.move_alias("fraud", "champion", 3, "ana", "", T0 + 10)
    models.move_alias("fraud", "canary", 3, "ana", "", T0 + 11)

    def numbers(limit: int | None, before: int | None) -> list[int]:
        return [v.version for v in models.versions("fraud", limit=limit, before=before)]

    assert numbers(None, None) == [7, 6, 5, 4, 3, 2, 1]
    assert numbers(3, None) == [7, 6, 5]
    assert numbers(3, 5) == [4, 3, 2]
    assert numbers(3, 2) == [1]
    assert numbers(3, 1) == []
    assert models.versions("ghost", limit=3, before=None) == []
    page = models.versions("fraud", limit=2, before=4)
    assert [(v.version, v.tags, v.aliases) for v in page] == [
        (3, {"i": "3"}, ("canary", "champion")),
        (2, {"i": "2"}, ()),
    ]
    assert page[0] == models.find_version("fraud", 3)


def test_models_come_by_name_in_pages_after_a_name(models: RegistryRepository) -> None:
    for name in ("fraud", "churn", "ads", "zeta", "b-2"):
        models.add_version(name, draft(T0))
    models.move_alias("churn", "champion", 1, "ana", "", T0 + 1)

    def names(after: str | None, limit: int) -> list[str]:
        return [m.name for m in models.models(after=after, limit=limit)]

    assert names(None, 10) == ["ads", "b-2", "churn", "fraud", "zeta"]
    assert names(None, 2) == ["ads", "b-2"]
    assert names("b-2", 2) == ["churn", "fraud"]
    assert names("fraud", 2) == ["zeta"]
    assert names("zeta", 2) == []
    assert names("c", 1) == ["churn"]  # any name is a bound, stored or not
    assert models.models(after="b-2", limit=1) == [model_of(models, "churn")]
