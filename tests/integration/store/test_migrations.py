"""Migrations upgrade an existing home in place and never lose data."""

from __future__ import annotations

import time

from sqlalchemy import insert, select

from modelyard.config import Settings
from modelyard.store.database import HEAD_REVISION, Database
from modelyard.store.schema import run_latest_metrics, run_metrics, runs


def test_upgrading_from_the_first_migration_keeps_existing_runs(settings: Settings) -> None:
    db = Database(settings.resolved_database_url, migrate=False)
    db.upgrade("0001")
    assert db.current_revision() == "0001"
    with db.write() as conn:
        conn.execute(
            insert(runs).values(id="a" * 32, name="old", status="FINISHED", start_time=time.time())
        )
        conn.execute(
            insert(run_metrics),
            [
                {"run_id": "a" * 32, "key": "auc", "value": value, "step": step, "timestamp": 1.0}
                for step, value in [(2, 0.9), (1, 0.7)]
            ],
        )
    db.dispose()

    upgraded = Database(settings.resolved_database_url)
    assert upgraded.current_revision() == HEAD_REVISION
    with upgraded.read() as conn:
        assert conn.execute(select(runs.c.name)).scalars().all() == ["old"]
        assert sorted(conn.execute(select(run_metrics.c.value)).scalars().all()) == [0.7, 0.9]
        latest = conn.execute(select(run_latest_metrics.c.key, run_latest_metrics.c.value)).all()
        assert [tuple(row) for row in latest] == [("auc", 0.9)], "backfilled from the history"
    upgraded.dispose()


def test_opening_an_up_to_date_home_does_not_migrate_again(settings: Settings) -> None:
    Database(settings.resolved_database_url).dispose()
    again = Database(settings.resolved_database_url)
    assert again.current_revision() == HEAD_REVISION
    again.dispose()
