"""Rows of a SQL source, read through SQLAlchemy in chunks (the offline store's one adapter
to SQL databases).

DuckDB's own postgres and sqlite extensions would read the tables directly, but they
are downloaded at run time, which fails on machines without network access; so the
rows come through SQLAlchemy (the driver the metadata database already uses), a
chunk at a time, and DuckDB loads each chunk. SQLAlchemy's errors stop here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy
from sqlalchemy import exc

from modelyard.errors import ValidationError
from modelyard.features.definitions import SqlSource

_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_QUERY = re.compile(r"^\s*(select|with)\b", re.IGNORECASE)


def read_rows(
    source: SqlSource, url: str, columns: Sequence[str], chunk_rows: int, what: str
) -> Iterator[list[tuple[Any, ...]]]:
    """``columns`` of every row of ``source``, in the order the database returns them,
    ``chunk_rows`` at a time; ``what`` names the source in errors."""
    statement = _statement(source.query, columns, what)
    engine = _engine(url, what)
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True).execute(statement)
            while True:
                rows = result.fetchmany(chunk_rows)
                if not rows:
                    return
                yield [tuple(row) for row in rows]
    except exc.SQLAlchemyError as error:
        message = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise ValidationError(f"could not read {what}: {message}") from error
    finally:
        engine.dispose()


def _statement(query: str, columns: Sequence[str], what: str) -> Any:
    wanted: list[Any] = [sqlalchemy.column(name) for name in columns]
    if _QUERY.match(query):
        rows = sqlalchemy.text(query).columns(*wanted).subquery("source")
        return sqlalchemy.select(*[rows.c[name] for name in columns])
    if _TABLE.match(query.strip()):
        schema, _, name = query.strip().rpartition(".")
        table = sqlalchemy.table(name, *wanted, schema=schema or None)
        return sqlalchemy.select(*[table.c[n] for n in columns])
    raise ValidationError(
        f"{what}: the query must be a table name or a SELECT (or WITH) statement, got {query!r}"
    )


def _engine(url: str, what: str) -> sqlalchemy.Engine:
    try:
        if url.startswith("postgresql://"):  # the driver modelyard installs, as the store does
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        return sqlalchemy.create_engine(url)
    except (exc.ArgumentError, exc.NoSuchModuleError, ModuleNotFoundError) as error:
        raise ValidationError(f"{what}: cannot open the database {url!r}: {error}") from error
