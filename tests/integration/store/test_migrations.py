"""Migrations upgrade an existing home in place and never lose data."""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from sqlalchemy import func, insert, inspect, make_url, select, text

from modelyard.config import Settings, load_settings
from modelyard.monitoring import SqlInferenceLogRepository, read_window
from modelyard.store.database import HEAD_REVISION, Database
from modelyard.store.schema import (
    feature_definition_versions,
    feature_definitions,
    inference_batches,
    metadata,
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
    assert upgraded.current_revision() == HEAD_REVISION == "0011"
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


# Issue 19, item 7: every migration refuses to downgrade ("never drop data"), so an
# upgrade cycle on a home populated at head is impossible. Instead the home is walked up
# from the first revision one step at a time; after each step, every table it created is
# filled with rows inserted by SQL (values from the declared column types, foreign keys
# pointing at the parents' rows), and every table that existed before a step must keep
# its row count after it. The one table dropped by design, inference_log (0006), must
# reappear in full as inference_batches. Tables created by the head revision are filled
# last and only see a re-open at head.
REVISIONS = [f"{n:04d}" for n in range(1, int(HEAD_REVISION) + 1)]
ROWS_EACH = 3


def _tables(conn: sqlite3.Connection) -> list[str]:
    found = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return sorted(n for (n,) in found if n != "alembic_version" and not n.startswith("sqlite_"))


def _counts(path: str) -> dict[str, int]:
    with closing(sqlite3.connect(path)) as conn:
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in _tables(conn)}


def _value(conn: sqlite3.Connection, table: str, column: str, row: int) -> object:
    for fk in conn.execute(f'PRAGMA foreign_key_list("{table}")'):
        if fk[3] == column:  # (id, seq, parent table, from, to, ...)
            return _value(conn, fk[2], fk[4], row)
    declared = next(c[2] for c in conn.execute(f'PRAGMA table_info("{table}")') if c[1] == column)
    kind = declared.upper()
    if "INT" in kind:
        return row + 1
    if any(word in kind for word in ("FLOAT", "REAL", "DOUBLE", "NUMERIC")):
        return float(row + 1)
    if "BLOB" in kind or "BINARY" in kind:
        return b"payload"
    if "BOOL" in kind:
        return 0
    if column in ("inputs", "outputs"):  # 0006 reads these as JSON documents
        return json.dumps({column: [float(row)]})
    return f"{column}-{row}"


def _fill(path: str, tables: list[str]) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        for table in tables:
            columns = [c[1] for c in conn.execute(f'PRAGMA table_info("{table}")')]
            quoted = ", ".join(f'"{c}"' for c in columns)
            marks = ", ".join("?" for _ in columns)
            for row in range(ROWS_EACH):
                values = [_value(conn, table, c, row) for c in columns]
                conn.execute(f'INSERT INTO "{table}" ({quoted}) VALUES ({marks})', values)


def test_every_migration_keeps_every_row_of_every_table(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home", environ={})
    path = make_url(settings.resolved_database_url).database
    assert path
    db = Database(settings.resolved_database_url, migrate=False)
    filled: set[str] = set()
    for revision in REVISIONS:
        before = _counts(path) if filled else {}
        db.upgrade(revision)
        after = _counts(path)
        kept = {t: n for t, n in before.items() if t != "inference_log"}
        assert {t: after.get(t) for t in kept} == kept, f"upgrade to {revision} lost rows"
        if "inference_log" in before and "inference_log" not in after:
            with db.read() as conn:
                moved = conn.execute(select(func.sum(inference_batches.c.requests))).scalar()
            assert moved == before["inference_log"], "inference records lost in 0006"
        new = [t for t, n in after.items() if n == 0]
        _fill(path, new)
        filled.update(new)
    db.dispose()

    reopened = Database(settings.resolved_database_url)
    assert reopened.current_revision() == HEAD_REVISION
    reopened.dispose()
    counts = _counts(path)
    assert sorted(counts) == sorted(t.name for t in metadata.sorted_tables)
    assert [t for t, n in counts.items() if n == 0] == [], "a table the test does not cover"
    assert len(counts) >= 27
