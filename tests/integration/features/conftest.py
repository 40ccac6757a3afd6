"""Online stores for the features tests: the in-memory fake, SQLite, and the real Redis at
127.0.0.1:6379 (never mocked), each able to count its round trips.

A Redis store lives under a random key prefix and is deleted after its test. Its client
counts what it sends to the server (one ``send_packed_command`` is one write of
commands to the socket, a pipeline included), so "one round trip" is measured on the
real server without ``MONITOR``. SQLite counts the statements its connection runs.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from modelyard.features.online.memory import InMemoryOnlineStore
from modelyard.features.online.redis import RedisOnlineStore
from modelyard.features.online.sqlite import SqliteOnlineStore
from modelyard.features.online.store import OnlineStore

REDIS_URL = "redis://127.0.0.1:6379/0"


class CountingConnection(redis.Connection):
    """A real connection that counts the times it writes commands to the socket."""

    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).sent += 1
        super().send_packed_command(command, check_health)


@dataclass
class Backend:
    """An online store under test and a way to count its round trips (None: not counted)."""

    name: str
    store: OnlineStore
    _count: Any = field(default=None)

    def round_trips(self) -> int | None:
        return None if self._count is None else int(self._count())


def redis_client() -> redis.Redis:
    counting = type("Counting", (CountingConnection,), {"sent": 0})
    pool = redis.ConnectionPool.from_url(REDIS_URL, connection_class=counting)
    client = redis.Redis(connection_pool=pool)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip(f"no Redis at {REDIS_URL}")
    return client


def open_backend(name: str, tmp_path: Path) -> Iterator[Backend]:
    if name == "memory":
        yield Backend(name, InMemoryOnlineStore())
        return
    if name == "sqlite":
        sqlite_store = SqliteOnlineStore(tmp_path / "online.sqlite")
        statements = [0]

        def traced() -> int:
            return statements[0]

        # Statements are counted on the connection of the thread that runs the test.
        conn: sqlite3.Connection = sqlite_store._connection()
        conn.set_trace_callback(lambda _: statements.__setitem__(0, statements[0] + 1))
        yield Backend(name, sqlite_store, traced)
        sqlite_store.close()
        return
    client = redis_client()
    counting = client.connection_pool.connection_class
    redis_store = RedisOnlineStore(REDIS_URL, prefix=f"test:{uuid.uuid4().hex}:", client=client)
    try:
        yield Backend(name, redis_store, lambda: counting.sent)
    finally:
        redis_store.delete_prefix()
        redis_store.close()


@pytest.fixture(params=["memory", "sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each online store in turn."""
    yield from open_backend(request.param, tmp_path)


@pytest.fixture(params=["sqlite", "redis"])
def real_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The two stores a deployment runs on."""
    yield from open_backend(request.param, tmp_path)
