"""Decisions written under the runner's lease are fenced: a leader that lost its lease
(paused while another took over) writes nothing, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from modelyard.config import Settings
from modelyard.errors import LeaseLostError
from modelyard.pipelines.sql import SqlPipelineRepository, lease_fence
from modelyard.routing import DeploymentStore, RolloutController, RolloutPolicy
from modelyard.routing.sql import SqlDeploymentRepository
from modelyard.runner.host import RunnerStores
from modelyard.runner.leadership import SERVE_LEASE, Leadership
from modelyard.yard import Yard


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def yard(
    settings: Settings,
    forest: RandomForestClassifier,
    classification_data: tuple[np.ndarray, np.ndarray],
) -> Iterator[Yard]:
    features, _ = classification_data
    with Yard(settings) as opened:
        opened.registry.register("fraud", forest, features)
        opened.registry.register("fraud", forest, features)
        opened.deployments.create("checkout", "fraud", 1)
        yield opened


def test_a_paused_leader_whose_lease_was_taken_over_writes_no_decision(yard: Yard) -> None:
    wall = Clock(1_000.0)
    paused = Clock(0.0)  # the old leader's monotonic clock: it stood still while paused
    leases = SqlPipelineRepository(yard.db)
    old = Leadership(leases, SERVE_LEASE, "old", ttl_s=10.0, clock=wall, monotonic=paused)
    new = Leadership(leases, SERVE_LEASE, "new", ttl_s=10.0, clock=wall, monotonic=wall)

    def controller(leadership: Leadership) -> RolloutController:
        fenced = yard.db.fenced(lease_fence(SERVE_LEASE, leadership.current))
        store = DeploymentStore(SqlDeploymentRepository(fenced), yard.registry)
        return RolloutController(store, clock=wall, actor=leadership.holder)

    old.step()
    policy = RolloutPolicy(step_weights=(10, 100), interval_s=60.0)
    controller(old).start("checkout", 2, policy)
    wall.now += 10.0  # the old leader's lease expired; it does not know yet
    new.step()
    assert old.leading()
    assert new.leading()
    with pytest.raises(LeaseLostError, match="taken over: now held by new"):
        controller(old).abort("checkout", note="a decision from the past")
    assert yard.deployments.get("checkout").rollout.state.phase.value == "progressing"  # type: ignore[union-attr]
    controller(new).pause("checkout")
    kinds = [event.kind for event in yard.deployments.events("checkout", "rollout.")]
    assert kinds == ["rollout.pause", "rollout.start"]


def test_a_runner_that_does_not_lead_writes_no_decision(settings: Settings, yard: Yard) -> None:
    leader, other = (
        RunnerStores(settings, lease=SERVE_LEASE),
        RunnerStores(settings, lease=SERVE_LEASE),
    )
    try:
        assert leader.leadership is not None
        assert other.leadership is not None
        leader.leadership.step()
        other.leadership.step()
        assert leader.leadership.leading()
        assert not other.leadership.leading()
        with pytest.raises(LeaseLostError, match="does not hold the lease 'runner:serve'"):
            RolloutController(other.deployments).start("checkout", 2)
        RolloutController(leader.deployments).start("checkout", 2)
        # Reads and the unfenced ports are every node's.
        assert other.deployments.get("checkout").config.canary == 2
    finally:
        leader.close()
        other.close()
