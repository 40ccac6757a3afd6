"""``PipelineRepository`` in memory, for unit tests; one lock makes its changes atomic."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from modelyard.errors import NotFoundError
from modelyard.pipelines.leases import lease_free, taken_lease
from modelyard.pipelines.plan import RetrainPlan
from modelyard.pipelines.repository import CachedOutput, Lease, RetrainRecord

__all__ = ["InMemoryPipelineRepository"]


class InMemoryPipelineRepository:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plans: dict[str, RetrainPlan] = {}
        self._checked: dict[str, float] = {}
        self._retrains: list[RetrainRecord] = []
        self._leases: dict[str, Lease] = {}
        self._cache: dict[str, CachedOutput] = {}

    def save_plan(self, plan: RetrainPlan, now: float) -> None:
        with self._lock:
            self._plans[plan.deployment] = plan

    def plan(self, deployment: str) -> RetrainPlan | None:
        return self._plans.get(deployment)

    def plans(self) -> list[RetrainPlan]:
        return [self._plans[name] for name in sorted(self._plans)]

    def delete_plan(self, deployment: str) -> bool:
        with self._lock:
            self._checked.pop(deployment, None)
            return self._plans.pop(deployment, None) is not None

    def checked_at(self, deployment: str) -> float | None:
        return self._checked.get(deployment) if deployment in self._plans else None

    def mark_checked(self, deployment: str, at: float) -> None:
        with self._lock:
            if deployment in self._plans:
                self._checked[deployment] = at

    def start_retrain(
        self,
        deployment: str,
        trigger: str,
        reason: str,
        holder: str,
        started_at: float,
        champion: int | None,
    ) -> RetrainRecord:
        with self._lock:
            record = RetrainRecord(
                len(self._retrains) + 1,
                deployment,
                trigger,
                reason,
                "running",
                started_at,
                holder,
                champion,
            )
            self._retrains.append(record)
            return record

    def update_retrain(self, retrain_id: int, **changes: Any) -> RetrainRecord:
        with self._lock:
            if not 1 <= retrain_id <= len(self._retrains):
                raise NotFoundError(f"no retrain with id {retrain_id}")
            record = replace(self._retrains[retrain_id - 1], **changes)
            self._retrains[retrain_id - 1] = record
            return record

    def retrains(self, deployment: str, limit: int = 50) -> list[RetrainRecord]:
        found = [r for r in reversed(self._retrains) if r.deployment == deployment]
        return found[:limit]

    def take_lease(
        self, name: str, holder: str, now: float, ttl_s: float, stale: Callable[[Lease], bool]
    ) -> Lease | None:
        with self._lock:
            current = self._leases.get(name)
            if not lease_free(current, now, current is not None and stale(current)):
                return None
            lease = taken_lease(current, name, holder, now, ttl_s)
            self._leases[name] = lease
            return lease

    def renew_lease(self, name: str, holder: str, until: float) -> bool:
        with self._lock:
            current = self._leases.get(name)
            if current is None or current.holder != holder:
                return False
            self._leases[name] = replace(current, expires_at=until)
            return True

    def release_lease(self, name: str, holder: str) -> None:
        with self._lock:
            current = self._leases.get(name)
            if current is not None and current.holder == holder:
                del self._leases[name]

    def lease(self, name: str) -> Lease | None:
        return self._leases.get(name)

    def cached(self, key: str) -> CachedOutput | None:
        return self._cache.get(key)

    def put_cached(self, entry: CachedOutput) -> None:
        with self._lock:
            self._cache.setdefault(entry.key, entry)
