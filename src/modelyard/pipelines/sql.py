"""The pipelines context's tables on the metadata database: ``retrain_plans``,
``retrains``, ``retrain_leases`` and ``pipeline_cache`` (SQLite or PostgreSQL).

Every change is one ``db.write()`` transaction. Taking a lease inserts its row if
there is none (``ON CONFLICT DO NOTHING``), else reads it with ``SELECT ... FOR
UPDATE`` (PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already serialises writers) and
takes it over only if it lapsed, so of many processes asking at once one gets it.

``lease_fence`` is the guard of a fenced database view (``Database.fenced``): each
write transaction first reads the lease's row ``FOR SHARE`` and goes on only if it
still names the caller's holder and generation. The shared row lock holds until the
write commits, so a takeover (``FOR UPDATE``) waits for it: a write is either before
the takeover or refused after it, never both sides.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, RowMapping, delete, desc, insert, select, update

from modelyard.errors import LeaseLostError, NotFoundError
from modelyard.pipelines.leases import lease_free, taken_lease
from modelyard.pipelines.plan import RetrainPlan
from modelyard.pipelines.repository import CachedOutput, Lease, RetrainRecord
from modelyard.store.database import Database, WriteGuard, upsert
from modelyard.store.schema import pipeline_cache, retrain_leases, retrain_plans, retrains

__all__ = ["SqlPipelineRepository", "lease_fence"]


class SqlPipelineRepository:
    """Plans, attempts, leases and the cache index in ``db``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- plans --------------------------------------------------------------------------

    def save_plan(self, plan: RetrainPlan, now: float) -> None:
        text = json.dumps(plan.to_dict(), sort_keys=True)
        with self._db.write() as conn:
            statement = upsert(conn, retrain_plans).values(
                deployment=plan.deployment, plan=text, updated_at=now
            )
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["deployment"], set_={"plan": text, "updated_at": now}
                )
            )

    def plan(self, deployment: str) -> RetrainPlan | None:
        with self._db.read() as conn:
            text = conn.execute(
                select(retrain_plans.c.plan).where(retrain_plans.c.deployment == deployment)
            ).scalar()
        return None if text is None else RetrainPlan.from_dict(json.loads(text))

    def plans(self) -> list[RetrainPlan]:
        with self._db.read() as conn:
            rows = conn.execute(
                select(retrain_plans.c.plan).order_by(retrain_plans.c.deployment)
            ).scalars()
            return [RetrainPlan.from_dict(json.loads(text)) for text in rows]

    def delete_plan(self, deployment: str) -> bool:
        with self._db.write() as conn:
            result = conn.execute(
                delete(retrain_plans).where(retrain_plans.c.deployment == deployment)
            )
        return bool(result.rowcount)

    def checked_at(self, deployment: str) -> float | None:
        with self._db.read() as conn:
            value = conn.execute(
                select(retrain_plans.c.checked_at).where(retrain_plans.c.deployment == deployment)
            ).scalar()
        return None if value is None else float(value)

    def mark_checked(self, deployment: str, at: float) -> None:
        with self._db.write() as conn:
            conn.execute(
                update(retrain_plans)
                .where(retrain_plans.c.deployment == deployment)
                .values(checked_at=at)
            )

    # -- attempts -------------------------------------------------------------------------

    def start_retrain(
        self,
        deployment: str,
        trigger: str,
        reason: str,
        holder: str,
        started_at: float,
        champion: int | None,
    ) -> RetrainRecord:
        values = {
            "deployment": deployment,
            "trigger": trigger,
            "reason": reason,
            "status": "running",
            "started_at": started_at,
            "holder": holder,
            "champion": champion,
        }
        with self._db.write() as conn:
            new_id = conn.execute(insert(retrains).values(values).returning(retrains.c.id)).scalar()
        return RetrainRecord(id=int(new_id or 0), **values)  # type: ignore[arg-type]

    def update_retrain(self, retrain_id: int, **changes: Any) -> RetrainRecord:
        values = dict(changes)
        if "gate" in values and values["gate"] is not None:
            values["gate"] = json.dumps(values["gate"], sort_keys=True)
        with self._db.write() as conn:
            if values:
                conn.execute(update(retrains).where(retrains.c.id == retrain_id).values(values))
            row = (
                conn.execute(select(retrains).where(retrains.c.id == retrain_id)).mappings().first()
            )
        if row is None:
            raise NotFoundError(f"no retrain with id {retrain_id}")
        return _retrain(row)

    def retrains(self, deployment: str, limit: int = 50) -> list[RetrainRecord]:
        with self._db.read() as conn:
            rows = conn.execute(
                select(retrains)
                .where(retrains.c.deployment == deployment)
                .order_by(desc(retrains.c.started_at), desc(retrains.c.id))
                .limit(limit)
            ).mappings()
            return [_retrain(row) for row in rows]

    # -- leases ---------------------------------------------------------------------------

    def take_lease(
        self, name: str, holder: str, now: float, ttl_s: float, stale: Callable[[Lease], bool]
    ) -> Lease | None:
        first = taken_lease(None, name, holder, now, ttl_s)
        with self._db.write() as conn:
            # Insert first: of two takers of a free name one inserts and the other, on
            # PostgreSQL, waits for it and then finds the row (a SELECT ... FOR UPDATE of
            # a missing row locks nothing).
            inserted = conn.execute(
                upsert(conn, retrain_leases)
                .values(_lease_values(first))
                .on_conflict_do_nothing(index_elements=["name"])
                .returning(retrain_leases.c.name)
            ).first()
            if inserted is not None:
                return first
            row = (
                conn.execute(
                    select(retrain_leases).where(retrain_leases.c.name == name).with_for_update()
                )
                .mappings()
                .one()
            )
            current = _lease(row)
            if not lease_free(current, now, stale(current)):
                return None
            lease = taken_lease(current, name, holder, now, ttl_s)
            conn.execute(
                update(retrain_leases)
                .where(retrain_leases.c.name == name)
                .values(_lease_values(lease))
            )
        return lease

    def renew_lease(self, name: str, holder: str, until: float) -> bool:
        with self._db.write() as conn:
            result = conn.execute(
                update(retrain_leases)
                .where(retrain_leases.c.name == name, retrain_leases.c.holder == holder)
                .values(expires_at=until)
            )
        return bool(result.rowcount)

    def release_lease(self, name: str, holder: str) -> None:
        with self._db.write() as conn:
            conn.execute(
                delete(retrain_leases).where(
                    retrain_leases.c.name == name, retrain_leases.c.holder == holder
                )
            )

    def lease(self, name: str) -> Lease | None:
        with self._db.read() as conn:
            row = (
                conn.execute(select(retrain_leases).where(retrain_leases.c.name == name))
                .mappings()
                .first()
            )
        return None if row is None else _lease(row)

    # -- the step cache's index -----------------------------------------------------------

    def cached(self, key: str) -> CachedOutput | None:
        with self._db.read() as conn:
            row = (
                conn.execute(select(pipeline_cache).where(pipeline_cache.c.key == key))
                .mappings()
                .first()
            )
        return None if row is None else CachedOutput(**dict(row))

    def put_cached(self, entry: CachedOutput) -> None:
        with self._db.write() as conn:
            conn.execute(
                upsert(conn, pipeline_cache)
                .values(
                    key=entry.key,
                    step=entry.step,
                    artifact_digest=entry.artifact_digest,
                    output_digest=entry.output_digest,
                    run_id=entry.run_id,
                    created_at=entry.created_at,
                )
                .on_conflict_do_nothing(index_elements=["key"])
            )


def lease_fence(name: str, held: Callable[[], Lease | None]) -> WriteGuard:
    """A ``Database.fenced`` guard: a write goes through only while ``held()`` (the
    caller's view of its lease on ``name``, None once it knows it lost it) is the lease
    the row names, holder and generation; else ``LeaseLostError`` and nothing is written.
    """

    def guard(conn: Connection) -> None:
        mine = held()
        if mine is None:
            raise LeaseLostError(f"this process does not hold the lease {name!r}")
        row = conn.execute(
            select(retrain_leases.c.holder, retrain_leases.c.generation)
            .where(retrain_leases.c.name == name)
            .with_for_update(read=True)
        ).first()
        if row is None or (row.holder, row.generation) != (mine.holder, mine.generation):
            who = "nobody" if row is None else f"{row.holder} (generation {row.generation})"
            raise LeaseLostError(
                f"the lease {name!r} of generation {mine.generation} was taken over: "
                f"now held by {who}"
            )

    return guard


def _lease(row: RowMapping) -> Lease:
    return Lease(
        row["name"], row["holder"], row["acquired_at"], row["expires_at"], row["generation"]
    )


def _lease_values(lease: Lease) -> dict[str, Any]:
    return {
        "name": lease.name,
        "holder": lease.holder,
        "acquired_at": lease.acquired_at,
        "expires_at": lease.expires_at,
        "generation": lease.generation,
    }


def _retrain(row: RowMapping) -> RetrainRecord:
    values = dict(row)
    if values.get("gate") is not None:
        values["gate"] = json.loads(values["gate"])
    return RetrainRecord(**values)
