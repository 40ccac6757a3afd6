"""Shared fixtures: settings for each metadata backend, and small trained models.

The PostgreSQL backend runs when ``MODELYARD_TEST_POSTGRES_URL`` is set (the
test script sets it to the local server); each test gets a schema of its own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier

from modelyard.config import Settings, load_settings
from modelyard.store.database import Database
from modelyard.yard import Yard

POSTGRES_URL = os.environ.get("MODELYARD_TEST_POSTGRES_URL")

# The test machine is shared and often loaded: judge properties, not the speed of
# generating their inputs.
hypothesis_settings.register_profile(
    "modelyard", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("modelyard")


def _postgres_settings(home: Path) -> Iterator[Settings]:
    if not POSTGRES_URL:
        pytest.skip("MODELYARD_TEST_POSTGRES_URL is not set")
    from sqlalchemy import create_engine, text

    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in POSTGRES_URL else "?"
    url = f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    try:
        yield load_settings(home=home, database_url=url, environ={})
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings for a fresh home on each metadata backend."""
    if request.param == "sqlite":
        yield load_settings(home=tmp_path / "home", environ={})
    else:
        yield from _postgres_settings(tmp_path / "home")


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def contract_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database | None]:
    """For a repository's contract test: ``None`` where the in-memory fake is under test,
    else an open database on each backend, for the SQL adapter."""
    if request.param == "memory":
        yield None
        return
    if request.param == "sqlite":
        opened = load_settings(home=tmp_path / "home", environ={})
        db = Database(opened.resolved_database_url)
        yield db
        db.dispose()
        return
    for opened in _postgres_settings(tmp_path / "home"):
        db = Database(opened.resolved_database_url)
        yield db
        db.dispose()


@pytest.fixture
def postgres_settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings on a fresh PostgreSQL schema alone (skipped without the server): for tests
    of several processes sharing one database."""
    yield from _postgres_settings(tmp_path / "home")


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home", environ={})


@pytest.fixture
def yard(settings: Settings) -> Iterator[Yard]:
    with Yard(settings) as opened:
        yield opened


@pytest.fixture(scope="session")
def classification_data() -> tuple[np.ndarray, np.ndarray]:
    features, labels = make_classification(
        n_samples=600, n_features=8, n_informative=5, random_state=3
    )
    return features.astype(np.float32), labels


@pytest.fixture(scope="session")
def forest(classification_data: tuple[np.ndarray, np.ndarray]) -> RandomForestClassifier:
    features, labels = classification_data
    return RandomForestClassifier(n_estimators=15, max_depth=6, random_state=0).fit(
        features, labels
    )
