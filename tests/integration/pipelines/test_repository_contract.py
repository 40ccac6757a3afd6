"""One contract for every ``PipelineRepository``: the in-memory fake, SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest

from modelyard.errors import NotFoundError
from modelyard.pipelines import CachedOutput, InMemoryPipelineRepository, Lease, RetrainPlan
from modelyard.pipelines.repository import PipelineRepository
from modelyard.pipelines.sql import SqlPipelineRepository
from modelyard.store.database import Database

T0 = 1_700_000_000.0


@pytest.fixture
def repository(contract_db: Database | None) -> PipelineRepository:
    return (
        InMemoryPipelineRepository() if contract_db is None else SqlPipelineRepository(contract_db)
    )


def test_plans_are_kept_replaced_listed_and_removed(repository: PipelineRepository) -> None:
    plan = RetrainPlan("fraud", "project.train:pipeline", schedule="0 3 * * *", on_drift=True)
    repository.save_plan(plan, T0)
    repository.save_plan(RetrainPlan("api", "project.train:other"), T0)
    assert repository.plan("fraud") == plan
    assert [p.deployment for p in repository.plans()] == ["api", "fraud"]
    assert repository.checked_at("fraud") is None
    repository.mark_checked("fraud", T0 + 5)
    replaced = RetrainPlan("fraud", "project.train:pipeline", min_new_labels=100)
    repository.save_plan(replaced, T0 + 10)
    assert repository.plan("fraud") == replaced
    assert repository.checked_at("fraud") == T0 + 5
    assert repository.delete_plan("fraud") is True
    assert repository.delete_plan("fraud") is False
    assert repository.plan("fraud") is None


def test_attempts_are_recorded_updated_and_listed_newest_first(
    repository: PipelineRepository,
) -> None:
    first = repository.start_retrain("fraud", "drift", "drift in amount", "h:1:a", T0, 7)
    second = repository.start_retrain("fraud", "manual", "asked", "h:1:b", T0 + 60, 7)
    repository.start_retrain("other", "manual", "asked", "h:1:c", T0 + 30, None)
    assert (first.status, first.champion) == ("running", 7)
    gate = {"passed": True, "reason": "beat the champion", "checks": []}
    done = repository.update_retrain(
        first.id, status="registered", version=8, run_id="r" * 32, gate=gate, ended_at=T0 + 9
    )
    assert (done.status, done.version, done.gate, done.ended_at) == ("registered", 8, gate, T0 + 9)
    assert [r.id for r in repository.retrains("fraud")] == [second.id, first.id]
    assert repository.retrains("fraud", limit=1)[0].trigger == "manual"
    with pytest.raises(NotFoundError, match="no retrain with id 999"):
        repository.update_retrain(999, status="failed")


def test_a_lease_goes_to_one_holder_until_it_expires_or_its_holder_is_gone(
    repository: PipelineRepository,
) -> None:
    alive = lambda lease: False  # noqa: E731
    taken = repository.take_lease("fraud", "a", T0, 60.0, alive)
    assert taken == Lease("fraud", "a", T0, T0 + 60)
    assert repository.take_lease("fraud", "b", T0 + 1, 60.0, alive) is None
    assert repository.renew_lease("fraud", "a", T0 + 120) is True
    assert repository.renew_lease("fraud", "b", T0 + 120) is False
    assert repository.take_lease("fraud", "b", T0 + 100, 60.0, alive) is None
    assert repository.take_lease("fraud", "b", T0 + 121, 60.0, alive) is not None  # expired
    assert repository.take_lease("fraud", "c", T0 + 122, 60.0, lambda lease: lease.holder == "b")
    repository.release_lease("fraud", "b")  # not b's any more: nothing happens
    assert repository.lease("fraud") is not None
    repository.release_lease("fraud", "c")
    assert repository.lease("fraud") is None


def test_each_takeover_of_a_lease_is_one_generation_later(
    repository: PipelineRepository,
) -> None:
    alive = lambda lease: False  # noqa: E731
    first = repository.take_lease("runner:serve", "a", T0, 10.0, alive)
    assert first == Lease("runner:serve", "a", T0, T0 + 10, 1)
    assert repository.take_lease("runner:serve", "a", T0 + 1, 10.0, alive) is None  # renew it
    assert repository.renew_lease("runner:serve", "a", T0 + 11) is True
    assert repository.lease("runner:serve") == Lease("runner:serve", "a", T0, T0 + 11, 1)
    second = repository.take_lease("runner:serve", "b", T0 + 11, 10.0, alive)  # expired
    assert second == Lease("runner:serve", "b", T0 + 11, T0 + 21, 2)
    assert repository.renew_lease("runner:serve", "a", T0 + 30) is False
    # Expired by its holder (a clean stop): the next taker has it at once, one later.
    assert repository.renew_lease("runner:serve", "b", T0 + 12) is True
    third = repository.take_lease("runner:serve", "a", T0 + 12, 10.0, alive)
    assert third == Lease("runner:serve", "a", T0 + 12, T0 + 22, 3)


def test_of_many_holders_asking_at_once_exactly_one_gets_the_lease(
    repository: PipelineRepository,
) -> None:
    winners: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def ask(holder: str) -> None:
        start.wait()
        try:
            if repository.take_lease("fraud", holder, T0, 60.0, lambda lease: False):
                winners.append(holder)
        except BaseException as error:  # a loser is told "no", never given an error
            errors.append(error)

    threads = [threading.Thread(target=ask, args=(f"h{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(winners) == 1


def test_a_cache_key_keeps_its_first_entry(repository: PipelineRepository) -> None:
    entry = CachedOutput("k" * 64, "train", "a" * 64, "b" * 64, T0, "r" * 32)
    repository.put_cached(entry)
    repository.put_cached(CachedOutput("k" * 64, "train", "c" * 64, "d" * 64, T0 + 1))
    assert repository.cached("k" * 64) == entry
    assert repository.cached("z" * 64) is None
