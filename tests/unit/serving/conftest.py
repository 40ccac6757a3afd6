"""Signatures written by hand, so the validators are tested without a registry; a fake
inference log and the app as a worker builds it, for the in-process app tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from modelyard.config import Settings
from modelyard.registry import InMemoryRegistryRepository, Registry
from modelyard.registry.signature import FieldSpec, Signature
from modelyard.routing import DeploymentStore, InMemoryDeploymentRepository
from modelyard.serving.hosting.outcomes import Answered, Failed
from modelyard.serving.hosting.served_deployment import FeatureSource, ServedDeployment
from modelyard.serving.http.app import InferenceLog, ServingApp
from modelyard.serving.telemetry.jsonlog import JsonLog
from modelyard.store.artifacts import LocalArtifactStore


class RecordedOutcomes:
    """An inference log that keeps what it is given; ``refuse`` makes it raise instead."""

    def __init__(self) -> None:
        self.outcomes: list[Answered | Failed] = []
        self.refuse: Exception | None = None
        self.followed: dict[str, int] = {}

    def record(self, outcome: Answered | Failed) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.outcomes.append(outcome)

    def follow(self, deployments: Mapping[str, ServedDeployment]) -> None:
        self.followed = {name: entry.revision for name, entry in deployments.items()}

    def counts(self) -> dict[tuple[str, str], int]:
        return {}

    def backlog_bytes(self) -> int:
        return 0

    @property
    def answered(self) -> list[Answered]:
        return [o for o in self.outcomes if isinstance(o, Answered)]

    @property
    def failed(self) -> list[Failed]:
        return [o for o in self.outcomes if isinstance(o, Failed)]


class InMemoryStores:
    """A home's registry and deployments in memory (artifacts in files): what a worker's
    composition root builds over SQL. A ``with`` block hands it out, as ``Yard`` does."""

    def __init__(self, home: Path) -> None:
        self.registry = Registry(
            InMemoryRegistryRepository(), LocalArtifactStore(home / "artifacts")
        )
        self.deployments = DeploymentStore(InMemoryDeploymentRepository(), self.registry)

    def __enter__(self) -> InMemoryStores:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


def build_app(
    settings: Settings,
    stores: InMemoryStores,
    refs: Sequence[str],
    *,
    inference_log: InferenceLog | None = None,
    metrics_dir: Path | None = None,
    features: FeatureSource | None = None,
) -> ServingApp:
    """The app wired as ``process.worker.worker_app`` wires it, on ``stores``."""
    return ServingApp(
        settings.serving,
        refs,
        versions=stores.registry,
        log=JsonLog(settings.resolved_log_path, worker="0"),
        deployments=stores.deployments,
        features=features,
        inference_log=inference_log,
        metrics_dir=metrics_dir,
    )


@pytest.fixture
def matrix_signature() -> Signature:
    """Three float32 features, the layout most tabular models have."""
    return Signature(
        inputs=(
            FieldSpec("amount", "float32"),
            FieldSpec("age", "float32", minimum=0, maximum=130),
            FieldSpec("score", "float32", allow_nan=True),
        ),
        outputs=(FieldSpec("label", "int64"), FieldSpec("probabilities", "float32", (2,))),
        layout="matrix",
    )


@pytest.fixture
def columns_signature() -> Signature:
    """Mixed types: one column each, as a DataFrame-trained model takes them."""
    return Signature(
        inputs=(
            FieldSpec("amount", "float64", allow_nan=True),
            FieldSpec("count", "int64"),
            FieldSpec("member", "bool"),
            FieldSpec("country", "object", categories=("DE", "FR", "NL")),
        ),
        outputs=(FieldSpec("prediction", "float64"),),
        layout="columns",
    )


@pytest.fixture
def recorded() -> RecordedOutcomes:
    """A fake inference log to hand to ``make_app``."""
    return RecordedOutcomes()


@pytest.fixture
def make_app() -> Callable[..., ServingApp]:
    """``build_app``, for tests that build the app themselves."""
    return build_app


@pytest.fixture(scope="session")
def stores_for() -> Callable[[Path], InMemoryStores]:
    """The in-memory stores of a home, the same ones every time it is asked for."""
    made: dict[Path, InMemoryStores] = {}

    def stores(home: Path) -> InMemoryStores:
        if home not in made:
            made[home] = InMemoryStores(home)
        return made[home]

    return stores
