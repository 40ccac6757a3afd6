"""The unit tier runs with no database: opening one here is a failure, not a slow test.

Tests of pure decisions use the in-memory fakes of the repositories
(``modelyard.<context>.memory``); a test that needs SQL belongs in
``tests/integration``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from modelyard.store import database


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a unit test opened a database; use the in-memory fakes")


@pytest.fixture(autouse=True)
def no_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(database, "create_database_engine", _refuse)
    monkeypatch.setattr(sqlite3, "connect", _refuse)
