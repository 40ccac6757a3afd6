"""A deployment store over the in-memory repository, with a catalog of model ``m``.

Model ``m``: versions 1-3 take the same four inputs, version 4 takes six (a
signature that differs from the others). No database: the signatures are
written by hand, as the registry infers them from a float32 matrix.
"""

from __future__ import annotations

import pytest

from modelyard.registry.signature import FieldSpec, Signature
from modelyard.routing import DeploymentStore, InMemoryCatalog, InMemoryDeploymentRepository

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


def matrix_signature(features: int) -> Signature:
    """``features`` float32 columns ``f0``, ``f1``, ... and one integer output."""
    return Signature(
        inputs=tuple(FieldSpec(f"f{i}", "float32") for i in range(features)),
        outputs=(FieldSpec("label", "int64"),),
        layout="matrix",
    )


@pytest.fixture
def clock() -> SimClock:
    return SimClock()


@pytest.fixture
def catalog() -> InMemoryCatalog:
    found = InMemoryCatalog()
    for features in (4, 4, 4, 6):
        found.add("m", matrix_signature(features))
    return found


@pytest.fixture
def repository() -> InMemoryDeploymentRepository:
    return InMemoryDeploymentRepository()


@pytest.fixture
def store(
    repository: InMemoryDeploymentRepository, catalog: InMemoryCatalog, clock: SimClock
) -> DeploymentStore:
    return DeploymentStore(repository, catalog, clock=clock)
