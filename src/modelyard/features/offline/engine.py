"""The DuckDB session behind the offline store: its memory, threads and spill directory.

DuckDB runs the point-in-time joins out of core: past ``memory_limit`` its sorts, joins
and aggregates spill to a directory of the session's own under the home, so a
training set larger than memory costs disk rather than a crash. DuckDB's own errors
stop here (``run``): a file or value it cannot read is a ``ValidationError`` naming
what was being read, anything else a ``StoreError``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from modelyard.config.settings import Settings
from modelyard.errors import ConfigurationError, StoreError, ValidationError


@dataclass(frozen=True)
class OfflineOptions:
    """What the offline store needs to know: DuckDB's limits, where to spill, where pushed
    events and the metadata database are, and whether the leakage guard is on."""

    memory_limit: str = "1GB"
    threads: int = 2
    temp_dir: Path | None = None  # None: a directory under the system's temporary one
    offline_dir: Path | None = None  # where pushed events are (stream sources)
    database_url: str | None = None  # a SqlSource without a url reads this database
    leakage_guard: bool = True  # never use a row created after the label's time

    @classmethod
    def from_settings(cls, settings: Settings, *, leakage_guard: bool = True) -> OfflineOptions:
        """The options ``settings.features`` gives, spilling under ``<home>/features/tmp``."""
        return cls(
            memory_limit=settings.features.memory_limit,
            threads=settings.features.threads,
            temp_dir=settings.resolved_features_dir / "tmp",
            offline_dir=settings.resolved_offline_dir,
            database_url=settings.resolved_database_url,
            leakage_guard=leakage_guard,
        )


def options_of(given: OfflineOptions | Settings | None) -> OfflineOptions:
    """``given`` as options: settings are read once, None is the defaults."""
    if given is None:
        return OfflineOptions()
    if isinstance(given, Settings):
        return OfflineOptions.from_settings(given)
    return given


@contextmanager
def session(options: OfflineOptions) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection with the options' limits; its spill directory (one
    per session, so concurrent sessions never share files) is removed on exit."""
    root = options.temp_dir or Path(tempfile.gettempdir()) / "modelyard-features"
    spill = Path(root) / f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    spill.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(":memory:")
    try:
        try:
            con.execute(f"SET memory_limit = {literal(options.memory_limit)}")
            con.execute(f"SET threads = {int(options.threads)}")
            con.execute(f"SET temp_directory = {literal(str(spill))}")
        except duckdb.Error as error:
            raise ConfigurationError(
                f"features.memory_limit / features.threads are not usable by DuckDB: {error}"
            ) from error
        yield con
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


def run(con: duckdb.DuckDBPyConnection, sql: str, what: str) -> duckdb.DuckDBPyConnection:
    """Execute ``sql``; ``what`` names what it reads, for the error a user sees."""
    with translated(what):
        return con.execute(sql)


def fetch_arrow(con: duckdb.DuckDBPyConnection, sql: str, what: str) -> Any:
    """``sql``'s result as a ``pyarrow.Table`` (DuckDB 1.x and 2.x name the call apart)."""
    with translated(what):
        relation = con.sql(sql)
        to_table = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table
        return to_table()


def column_types(con: duckdb.DuckDBPyConnection, relation: str, what: str) -> dict[str, str]:
    """Each column of ``relation`` (a table name or ``SELECT ...``) and its DuckDB type."""
    rows = run(con, f"DESCRIBE {relation}", what).fetchall()
    return {str(row[0]): str(row[1]) for row in rows}


@contextmanager
def translated(what: str) -> Iterator[None]:
    """DuckDB's errors as ours: what it cannot read is the input's fault, the rest ours."""
    try:
        yield
    except (
        duckdb.IOException,
        duckdb.ConversionException,
        duckdb.InvalidInputException,
        duckdb.BinderException,
    ) as error:
        raise ValidationError(f"could not read {what}: {_first_line(error)}") from error
    except duckdb.OutOfMemoryException as error:
        raise StoreError(
            f"the offline store ran out of memory reading {what} ({_first_line(error)}); "
            "raise features.memory_limit or give the spill directory more disk"
        ) from error
    except duckdb.Error as error:
        raise StoreError(
            f"the offline store failed reading {what}: {_first_line(error)}"
        ) from error


def quote(name: str) -> str:
    """An SQL identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """An SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
