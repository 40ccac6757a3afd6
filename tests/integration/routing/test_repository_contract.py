"""One contract for every ``DeploymentRepository``: the in-memory fake, SQLite and PostgreSQL.

``DeploymentStore`` (and so the unit tests that run it on the fake) relies on
exactly this behaviour; the fake must not drift from the database adapter.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace

import pytest

from modelyard.config import Settings
from modelyard.errors import ConflictError
from modelyard.routing import (
    Deployment,
    DeploymentConfig,
    DeploymentRepository,
    Event,
    Experiment,
    ExperimentArm,
    FixedHorizon,
    HistoryEntry,
    InMemoryDeploymentRepository,
    Revision,
    Rollout,
    RolloutPolicy,
    RoutingKey,
    Shadow,
    start_rollout,
)
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.store.database import Database

T0 = 1_700_000_000.0
CONFIG = DeploymentConfig("m", 1, routing_key=RoutingKey("header", "x-user"), log_ttl_days=7.0)


def created(name: str = "api", config: DeploymentConfig = CONFIG, at: float = T0) -> Revision:
    event = Event(at, "deployment.create", name, "first", {"champion": config.champion}, "ana")
    return Revision(Deployment(name, config, None, 1, at, at), "ana", "first", (event,))


def changed(
    current: Deployment, config: DeploymentConfig, at: float, reason: str = "changed"
) -> Revision:
    deployment = Deployment(
        current.name, config, current.rollout, current.revision + 1, current.created_at, at
    )
    return Revision(deployment, "bo", reason)


def add(repository: DeploymentRepository, name: str = "api", at: float = T0) -> Deployment:
    kept = repository.change(name, lambda current: created(name, at=at))
    assert kept is not None
    return kept


class Contract:
    """The assertions every adapter passes; subclasses provide ``repository``."""

    def test_an_empty_repository(self, repository: DeploymentRepository) -> None:
        assert repository.get("api") is None
        assert repository.list() == []
        assert repository.revision("api") is None
        assert repository.revisions() == {}
        assert repository.history("api") == []
        assert repository.events("api") == []

    def test_change_keeps_nothing_when_fn_returns_none(
        self, repository: DeploymentRepository
    ) -> None:
        seen: list[Deployment | None] = []

        def look(current: Deployment | None) -> Revision | None:
            seen.append(current)
            return None

        assert repository.change("api", look) is None
        assert seen == [None]
        first = add(repository)
        assert repository.change("api", look) == first
        assert seen == [None, first]
        assert repository.revision("api") == 1
        assert len(repository.history("api")) == 1

    def test_a_new_deployment_with_its_history_and_events(
        self, repository: DeploymentRepository
    ) -> None:
        kept = add(repository)
        assert kept == Deployment("api", CONFIG, None, 1, T0, T0)
        assert repository.get("api") == kept
        assert repository.list() == [kept]
        assert (repository.revision("api"), repository.revisions()) == (1, {"api": 1})
        assert repository.history("api") == [HistoryEntry(1, T0, "ana", "first", CONFIG)]
        assert repository.events("api") == [
            Event(T0, "deployment.create", "api", "first", {"champion": 1}, "ana")
        ]

    def test_a_change_is_a_new_revision(self, repository: DeploymentRepository) -> None:
        add(repository)
        canary = replace(CONFIG, canary=2, canary_weight=10.0, shadows=(Shadow(3, 0.5),))
        policy = RolloutPolicy(step_weights=(10, 50, 100))
        rollout = Rollout(2, policy, start_rollout(policy, T0 + 5), T0 + 5, "bo")

        def begin(current: Deployment | None) -> Revision:
            assert current is not None
            revision = changed(current, canary, T0 + 5, reason="rollout")
            return replace(revision, deployment=replace(revision.deployment, rollout=rollout))

        kept = repository.change("api", begin)
        assert kept == Deployment("api", canary, rollout, 2, T0, T0 + 5)
        assert repository.get("api") == kept
        assert repository.revisions() == {"api": 2}
        assert repository.history("api") == [
            HistoryEntry(1, T0, "ana", "first", CONFIG),
            HistoryEntry(2, T0 + 5, "bo", "rollout", canary),
        ]

    def test_the_row_keeps_its_creation_time(self, repository: DeploymentRepository) -> None:
        add(repository)

        def restamp(current: Deployment | None) -> Revision:
            assert current is not None
            revision = changed(current, CONFIG, T0 + 9)
            return replace(revision, deployment=replace(revision.deployment, created_at=T0 + 9))

        repository.change("api", restamp)
        found = repository.get("api")
        assert found is not None
        assert (found.created_at, found.updated_at, found.revision) == (T0, T0 + 9, 2)

    def test_what_fn_raises_leaves_nothing_behind(self, repository: DeploymentRepository) -> None:
        add(repository)

        def refuse(current: Deployment | None) -> Revision:
            raise ConflictError("not now")

        with pytest.raises(ConflictError, match="not now"):
            repository.change("api", refuse)
        with pytest.raises(ConflictError, match="not now"):
            repository.change("other", refuse)
        assert repository.revisions() == {"api": 1}
        assert len(repository.history("api")) == 1
        assert len(repository.events("api")) == 1

    def test_configurations_round_trip(self, repository: DeploymentRepository) -> None:
        experiment = Experiment(
            (ExperimentArm("a", 1, 50), ExperimentArm("b", 3, 50)),
            FixedHorizon(1000),
            metric="revenue",
            kind="mean",
            started_at=T0,
        )
        config = DeploymentConfig(
            "m", 1, shadows=(Shadow(2, 0.25),), experiment=experiment, follow_alias="champion"
        )
        repository.change("exp", lambda current: created("exp", config))
        found = repository.get("exp")
        assert found is not None
        assert found.config == config
        assert found.arms == {"a": 1, "b": 3}
        assert repository.history("exp")[0].config == config

    def test_events_newest_first_by_subject_and_kind(
        self, repository: DeploymentRepository
    ) -> None:
        add(repository)
        add(repository, "other")
        for i, kind in enumerate(["rollout.start", "rollout.advance", "experiment.report"]):
            repository.record(Event(T0 + i, kind, "api", f"#{i}", {"i": i}, None))
        assert [e.reason for e in repository.events("api")] == ["#2", "#1", "#0", "first"]
        assert [e.kind for e in repository.events("api", "rollout.")] == [
            "rollout.advance",
            "rollout.start",
        ]
        assert [e.reason for e in repository.events("api", limit=2)] == ["#2", "#1"]
        assert [e.reason for e in repository.events("other")] == ["first"]
        assert repository.events("api", "rollout.rollback") == []

    def test_event_payloads_are_kept_as_json(self, repository: DeploymentRepository) -> None:
        payload = {"figures": {"p99": float("inf"), "ratio": float("nan")}, "checks": ("a", 1)}
        repository.record(Event(T0, "rollout.hold", "api", "why", payload, "bot"))
        [event] = repository.events("api")
        assert event.payload == {"figures": {"p99": "inf", "ratio": "nan"}, "checks": ["a", 1]}
        assert (event.at, event.kind, event.subject, event.reason, event.actor) == (
            T0,
            "rollout.hold",
            "api",
            "why",
            "bot",
        )

    def test_deployments_are_listed_by_name(self, repository: DeploymentRepository) -> None:
        for name in ("zeta", "alpha", "mid"):
            add(repository, name)
        assert [d.name for d in repository.list()] == ["alpha", "mid", "zeta"]
        assert repository.revisions() == {"alpha": 1, "mid": 1, "zeta": 1}

    def test_concurrent_changes_are_never_lost(self, repository: DeploymentRepository) -> None:
        add(repository)
        errors: list[BaseException] = []

        def bump(current: Deployment | None) -> Revision:
            assert current is not None
            days = current.config.log_ttl_days or 0.0
            return changed(current, replace(current.config, log_ttl_days=days + 1), T0)

        def worker() -> None:
            try:
                for _ in range(5):
                    repository.change("api", bump)
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        found = repository.get("api")
        assert found is not None
        assert (found.revision, found.config.log_ttl_days) == (21, 27.0)
        assert [h.revision for h in repository.history("api")] == list(range(1, 22))


class TestInMemory(Contract):
    @pytest.fixture
    def repository(self) -> DeploymentRepository:
        return InMemoryDeploymentRepository()


class TestSql(Contract):
    @pytest.fixture
    def repository(self, settings: Settings) -> Iterator[DeploymentRepository]:
        db = Database(settings.resolved_database_url)
        try:
            yield SqlDeploymentRepository(db)
        finally:
            db.dispose()
