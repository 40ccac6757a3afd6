"""A migrated home with a few registered versions, built once and copied for each test.

Model ``m``: versions 1-3 take the same four inputs, version 4 takes six (a
signature that differs from the others). Copying a ready SQLite home costs a
few milliseconds; migrating and registering costs seconds.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelyard.config import load_settings
from modelyard.routing import DeploymentStore
from modelyard.yard import Yard

T0 = 1_700_000_000.0


class SimClock:
    """Simulated time: tests move it by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def _fit(features: int, c: float) -> tuple[LogisticRegression, np.ndarray]:
    rng = np.random.default_rng(features)
    x = rng.normal(size=(200, features)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    return LogisticRegression(C=c).fit(x, y), x


@pytest.fixture(scope="session")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("routing") / "home"
    with Yard(load_settings(home=home, environ={})) as yard:
        for c in (1.0, 0.5, 0.1):
            model, x = _fit(4, c)
            yard.register_model("m", model, x)
        model, x = _fit(6, 1.0)
        yard.register_model("m", model, x)
    return home


@pytest.fixture
def clock() -> SimClock:
    return SimClock()


@pytest.fixture
def routing_yard(template_home: Path, tmp_path: Path) -> Iterator[Yard]:
    home = tmp_path / "home"
    shutil.copytree(template_home, home)
    with Yard(load_settings(home=home, environ={})) as yard:
        yield yard


@pytest.fixture
def store(routing_yard: Yard, clock: SimClock) -> DeploymentStore:
    return DeploymentStore(routing_yard.db, routing_yard.registry, clock=clock)
