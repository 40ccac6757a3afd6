"""The metadata database: one SQLAlchemy engine, migrated on open, with safe write transactions.

SQLite (the embedded default) runs in WAL mode so readers never wait for the
writer, and every write transaction starts with ``BEGIN IMMEDIATE``: the write
lock is taken up front and waited for (busy timeout), instead of a deferred
transaction failing with "database is locked" when it tries to upgrade its
lock. PostgreSQL runs the same statements; callers that allocate numbers
(model versions) lock the parent row with ``SELECT ... FOR UPDATE``.

A fenced view (``fenced(guard)``) shares the engine and runs ``guard`` first in every
write transaction it opens: a process that writes decisions under a lease hands its
ports such a view, and the guard (``pipelines.sql.lease_fence``) refuses the write
inside the transaction if the lease was taken over.

SQLAlchemy's exceptions stop here: inside ``read()`` and ``write()`` a write the
database refuses for its content (a duplicate key, a value out of range) becomes
``RejectedWriteError``, and anything else the driver raises ``StoreError``, so the
contexts' adapters and their callers only ever catch modelyard's errors.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, exc, text
from sqlalchemy.dialects import postgresql, sqlite

from modelyard.errors import ConfigurationError, RejectedWriteError, StoreError

HEAD_REVISION = "0011"
_MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_SQLITE_WAL_LIMIT_BYTES = 64 * 1024 * 1024
_SQLITE_BUSY_TIMEOUT_MS = 60_000
_LOCK_RETRIES = 20

# Runs first in a fenced view's write transactions; raises to refuse the write.
WriteGuard = Callable[[Connection], None]


class Database:
    """The metadata database behind one process; ``read()`` and ``write()`` hand out connections."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.engine = create_database_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._guard: WriteGuard | None = None
        if migrate:
            self.upgrade()

    def fenced(self, guard: WriteGuard) -> Database:
        """A view of this database (same engine and pool) whose ``write()`` transactions
        run ``guard`` before their body; ``dispose`` the original, not the view."""
        view = copy.copy(self)
        view._guard = guard
        return view

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads; on SQLite, a snapshot that never blocks the writer."""
        with translated_errors(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction, committed on success and rolled back on error.

        On SQLite the write lock is taken before the body runs, so the body never
        sees a lock error; if the lock cannot be had within the busy timeout the
        begin is retried rather than the error surfacing to the caller.
        """
        conn = self._begin_write()
        try:
            with translated_errors():
                if self._guard is not None:
                    self._guard(conn)
                yield conn
                conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()

    def _begin_write(self) -> Connection:
        delay = 0.01
        for attempt in range(_LOCK_RETRIES):
            conn = self.engine.connect().execution_options(modelyard_begin="BEGIN IMMEDIATE")
            try:
                conn.begin()
                return conn
            except exc.OperationalError as error:
                conn.close()
                if not _is_lock_error(error) or attempt == _LOCK_RETRIES - 1:
                    raise StoreError(f"could not start a write transaction: {error}") from error
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")

    def current_revision(self) -> str | None:
        """The schema revision the database is at, or None if it was never migrated."""
        with self.read() as conn:
            try:
                row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
            except exc.DBAPIError:
                conn.rollback()
                return None
        return None if row is None else str(row[0])

    def upgrade(self, revision: str = "head") -> None:
        """Migrate in place to ``revision``; a no-op (one query) when already there."""
        if revision == "head" and self.current_revision() == HEAD_REVISION:
            return
        # Alembic costs ~0.5 s to import: only pay it when a migration is due.
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS_DIR))
        with self.engine.connect() as conn:
            conn.execution_options(modelyard_begin="BEGIN IMMEDIATE")
            with conn.begin():
                config.attributes["connection"] = conn
                command.upgrade(config, revision)

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def translated_errors() -> Iterator[None]:
    """Raise modelyard's errors for SQLAlchemy's (see the module docstring)."""
    try:
        yield
    except (exc.IntegrityError, exc.DataError) as error:
        raise RejectedWriteError(f"the database refused the write: {error.orig}") from error
    except exc.SQLAlchemyError as error:
        raise StoreError(f"the metadata database failed: {error}") from error


def upsert(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT for ``conn``'s dialect that takes ``on_conflict_do_nothing/do_update``
    (both SQLite and PostgreSQL have ``ON CONFLICT``; the core ``insert`` does not)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def create_database_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
        event.listen(engine, "connect", _configure_sqlite)
        # We issue BEGIN ourselves (deferred for reads, IMMEDIATE for writes).
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.startswith("postgresql"):
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        try:
            return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
        except ModuleNotFoundError as error:
            raise ConfigurationError(
                "PostgreSQL support needs the driver: pip install 'modelyard[postgres]'"
            ) from error
    raise ConfigurationError(
        f"database_url must start with sqlite:// or postgresql://, got {url.split(':', 1)[0]!r}"
    )


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # autocommit at the driver; we BEGIN explicitly
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    # The -wal file otherwise keeps its largest size for good; this truncates it back
    # after each checkpoint that empties it, so disk stays bounded on a long-running server.
    cursor.execute(f"PRAGMA journal_size_limit = {_SQLITE_WAL_LIMIT_BYTES}")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql(conn.get_execution_options().get("modelyard_begin", "BEGIN"))


def _is_lock_error(error: exc.OperationalError) -> bool:
    message = str(error.orig).lower()
    return "locked" in message or "busy" in message
