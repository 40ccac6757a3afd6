"""Read-only SQL for hot lookups (alias resolution, loading a version), without SQLAlchemy.

Resolving ``fraud@champion`` through SQLAlchemy costs ~350 us per call and
importing it ~0.3 s on this machine; the stdlib ``sqlite3`` driver answers the
same query in ~20 us and imports in 20 ms. So the few queries on those paths
are plain SQL text with ``:name`` parameters, run by this port: stdlib sqlite3
for the embedded default, SQLAlchemy's ``text()`` for PostgreSQL. The same text
serves both, so there is one query, not two.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from modelyard.errors import ConfigurationError, StoreError


class SqlReader(Protocol):
    """Runs a read-only SQL query with ``:name`` parameters and returns its rows."""

    def fetch_all(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]: ...


class SqliteReader:
    """One stdlib connection per thread to the embedded database, used only for SELECTs."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if not self.path.exists():
                raise StoreError(
                    f"no modelyard database at {self.path}: run `modelyard init` first"
                )
            conn = sqlite3.connect(
                self.path, timeout=60, check_same_thread=False, isolation_level=None
            )
            conn.execute("PRAGMA busy_timeout = 60000")
            self._local.conn = conn
        return conn

    def fetch_all(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        try:
            return self._connection().execute(sql, dict(params)).fetchall()
        except sqlite3.Error as error:
            raise StoreError(
                f"could not read the metadata database {self.path}: {error}"
            ) from error


class SqlAlchemyReader:
    """The same queries through an SQLAlchemy engine (PostgreSQL)."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import text

        self._engine = engine
        self._text = text
        self._cache: dict[str, Any] = {}

    def fetch_all(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        statement = self._cache.get(sql)
        if statement is None:
            statement = self._cache[sql] = self._text(sql)
        from modelyard.store.database import translated_errors

        with translated_errors(), self._engine.connect() as conn:
            return [tuple(row) for row in conn.execute(statement, dict(params))]


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///path`` URL, or None for any other database."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///") :]
    if not path or path == ":memory:":
        raise ConfigurationError("an in-memory SQLite database cannot be shared; give a file path")
    return Path(path)


def open_reader(url: str, engine: Any = None) -> SqlReader:
    """stdlib sqlite3 for SQLite files; otherwise SQLAlchemy (``engine`` if one exists)."""
    path = sqlite_path(url)
    if path is not None:
        return SqliteReader(path)
    if engine is None:
        from modelyard.store.database import create_database_engine

        engine = create_database_engine(url)
    return SqlAlchemyReader(engine)
