"""The ports the pipelines context stands on: plans, retraining attempts, leases, the
step cache's index.

Adapters: ``pipelines.sql`` (the metadata database) and ``pipelines.memory`` (in
memory, for tests); ``tests/integration/pipelines/test_repository_contract.py`` holds
both to the same behaviour.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from modelyard.pipelines.plan import RetrainPlan

__all__ = [
    "CachedOutput",
    "Lease",
    "PipelineRepository",
    "RetrainRecord",
    "RetrainStatus",
]

# running: under way; failed: a step raised (``error`` says which); gate_failed: the
# candidate was stopped; registered: a version exists, no rollout yet; rolled_out: its
# canary rollout started; abandoned: its holder died before it ended.
RetrainStatus = Literal["running", "failed", "gate_failed", "registered", "rolled_out", "abandoned"]


@dataclass(frozen=True)
class RetrainRecord:
    """One retraining attempt of a deployment."""

    id: int
    deployment: str
    trigger: str
    reason: str
    status: RetrainStatus
    started_at: float
    holder: str
    champion: int | None = None
    ended_at: float | None = None
    run_id: str | None = None
    version: int | None = None
    gate: dict[str, Any] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Lease:
    """Who holds ``name`` (one retrain of a deployment at a time, or the runner's
    leadership) and until when, unless renewed; ``generation`` counts the takeovers of
    the name's row (1 for a new row): with the holder, the token a fenced write checks."""

    name: str
    holder: str
    acquired_at: float
    expires_at: float
    generation: int = 1


@dataclass(frozen=True)
class CachedOutput:
    """A step's stored output: the artifact holding it and the digest of its content."""

    key: str
    step: str
    artifact_digest: str
    output_digest: str
    created_at: float
    run_id: str | None = None


class PipelineRepository(Protocol):
    """Plans, attempts, leases and the cache index of one home."""

    # -- plans
    def save_plan(self, plan: RetrainPlan, now: float) -> None:
        """Create or replace the deployment's plan (its check time is kept)."""
        ...

    def plan(self, deployment: str) -> RetrainPlan | None: ...

    def plans(self) -> list[RetrainPlan]:
        """Every plan, by deployment."""
        ...

    def delete_plan(self, deployment: str) -> bool: ...

    def checked_at(self, deployment: str) -> float | None:
        """When the plan's triggers were last checked (None: never, or no plan)."""
        ...

    def mark_checked(self, deployment: str, at: float) -> None: ...

    # -- attempts
    def start_retrain(
        self,
        deployment: str,
        trigger: str,
        reason: str,
        holder: str,
        started_at: float,
        champion: int | None,
    ) -> RetrainRecord:
        """A new attempt, ``running``."""
        ...

    def update_retrain(self, retrain_id: int, **changes: Any) -> RetrainRecord:
        """Set fields of an attempt (status, ended_at, run_id, version, gate, error)."""
        ...

    def retrains(self, deployment: str, limit: int = 50) -> list[RetrainRecord]:
        """The deployment's attempts, newest first."""
        ...

    # -- leases
    def take_lease(
        self, name: str, holder: str, now: float, ttl_s: float, stale: Callable[[Lease], bool]
    ) -> Lease | None:
        """Take ``name`` for ``holder`` until ``now + ttl_s``, atomically: when nobody holds
        it, when its lease expired, or when ``stale`` says its holder is gone
        (``leases.lease_free``); the taken lease's generation is the row's next
        (``leases.taken_lease``). None: held (by ``holder`` itself too: renew it)."""
        ...

    def renew_lease(self, name: str, holder: str, until: float) -> bool:
        """Move ``holder``'s lease's expiry to ``until`` (to the past: free it for the next
        taker, keeping its generation); False if it no longer holds it."""
        ...

    def release_lease(self, name: str, holder: str) -> None: ...

    def lease(self, name: str) -> Lease | None: ...

    # -- the step cache's index
    def cached(self, key: str) -> CachedOutput | None: ...

    def put_cached(self, entry: CachedOutput) -> None:
        """Keep ``entry`` (a key stored already keeps its first entry)."""
        ...
