"""The ``DefinitionRepository`` contract: the in-memory fake and the SQL adapter (SQLite,
PostgreSQL) answer the same calls with the same values."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from modelyard.features.memory import InMemoryDefinitionRepository
from modelyard.features.repository import (
    DefinitionRepository,
    DefinitionVersion,
    DefinitionWrite,
    StoredDefinition,
)
from modelyard.features.sql import SqlDefinitionRepository
from modelyard.store.database import Database

T0 = 1_700_000_000.0
VIEW = {"name": "card_stats", "ttl": 3600.0, "tags": {"team": "risk"}, "features": [["a", 1]]}


@pytest.fixture
def repository(contract_db: Database | None) -> DefinitionRepository:
    """The fake, then the SQL adapter on each backend (``contract_db``)."""
    if contract_db is None:
        return InMemoryDefinitionRepository()
    return SqlDefinitionRepository(contract_db)


def write(*writes: DefinitionWrite) -> Any:
    return lambda _current: list(writes)


def added(kind: Any, name: str, definition: dict[str, Any] | None = None) -> DefinitionWrite:
    return DefinitionWrite(kind, name, "added", definition or {"name": name}, f"d-{name}")


def test_nothing_is_defined_at_first(repository: DefinitionRepository) -> None:
    assert repository.current() == []
    assert repository.get("view", "card_stats") is None
    assert repository.history("view", "card_stats") == []


def test_added_definitions_read_back_by_kind_then_name(repository: DefinitionRepository) -> None:
    entries = repository.change(
        write(
            added("on_demand", "ratio"),
            added("view", "card_stats", VIEW),
            added("entity", "card"),
            added("view", "card_profile"),
        ),
        at=T0,
        actor="ana",
    )
    assert [(e.kind, e.name, e.version, e.action) for e in entries] == [
        ("on_demand", "ratio", 1, "added"),
        ("view", "card_stats", 1, "added"),
        ("entity", "card", 1, "added"),
        ("view", "card_profile", 1, "added"),
    ]
    assert [(d.kind, d.name) for d in repository.current()] == [
        ("entity", "card"),
        ("view", "card_profile"),
        ("view", "card_stats"),
        ("on_demand", "ratio"),
    ]
    view = repository.get("view", "card_stats")
    assert view == StoredDefinition(
        "view",
        "card_stats",
        1,
        "d-card_stats",
        {"name": "card_stats", "ttl": 3600.0, "tags": {"team": "risk"}, "features": [["a", 1]]},
        T0,
        T0,
        "ana",
    )
    assert entries[1].definition == view.definition
    assert repository.get("entity", "card_stats") is None


def test_every_version_is_kept_with_who_when_and_what(repository: DefinitionRepository) -> None:
    repository.change(write(added("view", "v", {"ttl": 1.0})), at=T0, actor="ana")
    changed = DefinitionWrite("view", "v", "changed", {"ttl": 2.0}, "d2", "ttl: 1s -> 2s")
    repository.change(write(changed), at=T0 + 10, actor="bo")
    stored = repository.get("view", "v")
    assert stored is not None
    assert (stored.version, stored.digest, stored.definition) == (2, "d2", {"ttl": 2.0})
    assert (stored.created_at, stored.updated_at, stored.updated_by) == (T0, T0 + 10, "bo")
    repository.change(write(DefinitionWrite("view", "v", "removed")), at=T0 + 20, actor="cy")
    assert repository.get("view", "v") is None
    repository.change(write(added("view", "v", {"ttl": 3.0})), at=T0 + 30, actor=None)
    assert repository.history("view", "v") == [
        DefinitionVersion("view", "v", 1, "added", "d-v", {"ttl": 1.0}, "", T0, "ana"),
        DefinitionVersion("view", "v", 2, "changed", "d2", {"ttl": 2.0}, "ttl: 1s -> 2s",
                          T0 + 10, "bo"),
        DefinitionVersion("view", "v", 2, "removed", None, None, "", T0 + 20, "cy"),
        DefinitionVersion("view", "v", 3, "added", "d-v", {"ttl": 3.0}, "", T0 + 30, None),
    ]  # fmt: skip
    again = repository.get("view", "v")
    assert again is not None
    assert (again.version, again.created_at) == (3, T0 + 30)


def test_decide_sees_the_current_definitions(repository: DefinitionRepository) -> None:
    repository.change(write(added("entity", "card")), at=T0, actor=None)
    seen: list[list[str]] = []

    def decide(current: list[StoredDefinition]) -> list[DefinitionWrite]:
        seen.append([d.name for d in current])
        return []

    assert repository.change(decide, at=T0, actor=None) == []
    assert seen == [["card"]]


def test_a_change_is_all_or_nothing(repository: DefinitionRepository) -> None:
    repository.change(write(added("entity", "card")), at=T0, actor=None)
    with pytest.raises(ValueError, match="entity 'card' is defined already"):
        repository.change(write(added("view", "v"), added("entity", "card")), at=T0, actor=None)
    with pytest.raises(ValueError, match="view 'w' is not defined: it cannot be removed"):
        repository.change(
            write(added("view", "v"), DefinitionWrite("view", "w", "removed")), at=T0, actor=None
        )

    def fails(_current: list[StoredDefinition]) -> list[DefinitionWrite]:
        raise RuntimeError("the caller changed its mind")

    with pytest.raises(RuntimeError, match="changed its mind"):
        repository.change(fails, at=T0, actor=None)
    assert [d.name for d in repository.current()] == ["card"]
    assert repository.history("view", "v") == []


def test_concurrent_changes_run_one_after_the_other(repository: DefinitionRepository) -> None:
    """Each ``decide`` sees what the previous change wrote: no version is given twice."""
    repository.change(write(added("view", "v", {"n": 0})), at=T0, actor=None)
    errors: list[BaseException] = []

    def bump() -> None:
        def decide(current: list[StoredDefinition]) -> list[DefinitionWrite]:
            (view,) = current
            n = view.definition["n"] + 1
            return [DefinitionWrite("view", "v", "changed", {"n": n}, f"d{n}")]

        try:
            repository.change(decide, at=T0, actor=None)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=bump) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    stored = repository.get("view", "v")
    assert stored is not None
    assert (stored.version, stored.definition) == (7, {"n": 6})
    assert [v.version for v in repository.history("view", "v")] == [1, 2, 3, 4, 5, 6, 7]
