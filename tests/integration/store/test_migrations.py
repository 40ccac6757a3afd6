"""Migrations upgrade an existing home in place and never lose data."""

from __future__ import annotations

import json
import time

from sqlalchemy import insert, inspect, select, text

from modelyard.config import Settings
from modelyard.monitoring import SqlInferenceLogRepository, read_window
from modelyard.store.database import HEAD_REVISION, Database
from modelyard.store.schema import (
    feature_definition_versions,
    feature_definitions,
    inference_batches,
    run_latest_metrics,
    run_metrics,
    runs,
)


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


def test_per_request_inference_records_move_into_batches_intact(settings: Settings) -> None:
    db = Database(settings.resolved_database_url, migrate=False)
    db.upgrade("0005")
    old = [
        {"id": f"id{i}", "request_id": f"req{i}", "ts": 1000.0 + i * 40, "deployment": "fraud",
         "model": "m", "version": 1 + i % 2, "arm": "primary", "status": 500 if i == 3 else 200,
         "latency_ms": 1.5, "rows": 2, "error": "boom" if i == 3 else None,
         "inputs": None if i == 3 else json.dumps({"amount": [i, 2.5], "user": ["a", None]}),
         "outputs": None if i == 3 else json.dumps({"score": [0.25, 0.75]})}
        for i in range(6)
    ]  # fmt: skip
    with db.write() as conn:
        conn.execute(text(f"INSERT INTO inference_log ({', '.join(old[0])}) VALUES "
                          f"({', '.join(':' + k for k in old[0])})"), old)  # fmt: skip
    db.dispose()

    upgraded = Database(settings.resolved_database_url)
    window = read_window(SqlInferenceLogRepository(upgraded), "fraud", 0.0, 1e9)
    assert window.request_ids.tolist() == [f"req{i}" for i in range(6)]
    assert window.version.tolist() == [1, 2, 1, 2, 1, 2]
    assert window.status.tolist() == [200, 200, 200, 500, 200, 200]
    assert window.inputs["amount"].tolist() == [0, 2.5, 1, 2.5, 2, 2.5, 4, 2.5, 5, 2.5]
    assert window.inputs["user"].tolist() == ["a", None] * 5
    assert window.outputs["score"].tolist() == [0.25, 0.75] * 5
    with upgraded.read() as conn:
        tables = inspect(conn).get_table_names()
    assert "inference_log" not in tables
    # 40 s apart: versions 1 and 2 each span 160 s, so each splits into 60-s batches.
    with upgraded.read() as conn:
        spans = conn.execute(select(inference_batches.c.ts_first, inference_batches.c.ts_last))
        assert all(last - first <= 60 for first, last in spans)
    upgraded.dispose()


def test_the_features_tables_arrive_on_an_existing_home_as_the_schema_describes(
    settings: Settings,
) -> None:
    db = Database(settings.resolved_database_url, migrate=False)
    db.upgrade("0006")
    with db.write() as conn:
        conn.execute(
            insert(runs).values(id="b" * 32, name="kept", status="FINISHED", start_time=1.0)
        )
    db.dispose()

    upgraded = Database(settings.resolved_database_url)
    assert upgraded.current_revision() == HEAD_REVISION == "0008"
    with upgraded.read() as conn:
        assert conn.execute(select(runs.c.name)).scalars().all() == ["kept"]
        inspector = inspect(conn)
        for table in (feature_definitions, feature_definition_versions):
            migrated = {c["name"]: c["nullable"] for c in inspector.get_columns(table.name)}
            described = {c.name: c.nullable for c in table.columns}
            assert migrated == described, table.name
        uniques = inspector.get_unique_constraints("feature_definition_versions")
        assert [u["column_names"] for u in uniques] == [["kind", "name", "version", "action"]]
    upgraded.dispose()
