"""The deployment store on each metadata backend: history, revisions, concurrency, bad input."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from modelyard.errors import (
    ConflictError,
    NotFoundError,
    ValidationError,
    VersionNotFoundError,
)
from modelyard.routing import DeploymentConfig, DeploymentStore, RolloutController
from modelyard.yard import Yard


def test_every_change_bumps_the_revision_and_keeps_history(store: DeploymentStore) -> None:
    created = store.create("api", "fraud", 1, actor="ana", reason="first release")
    assert (created.revision, created.config.champion) == (1, 1)
    store.update(
        "api", lambda c: replace(c, canary=2, canary_weight=10), actor="bo", reason="try v2"
    )
    store.update("api", lambda c: replace(c, canary_weight=30), actor="bo", reason="more v2")
    store.update("api", lambda c: replace(c, canary=None, canary_weight=0), reason="enough")
    assert store.revision("api") == 4
    assert store.revisions() == {"api": 4}
    history = store.history("api")
    assert [(h.revision, h.actor, h.reason) for h in history] == [
        (1, "ana", "first release"),
        (2, "bo", "try v2"),
        (3, "bo", "more v2"),
        (4, None, "enough"),
    ]
    assert [h.config.canary_weight for h in history] == [0, 10, 30, 0]
    assert history[1].config == DeploymentConfig("fraud", 1, canary=2, canary_weight=10)
    kinds = [e.kind for e in store.events("api")]
    assert kinds == ["deployment.update"] * 3 + ["deployment.create"]
    assert [d.name for d in store.list()] == ["api"]
    assert store.revision("nope") is None


def test_alias_references_and_shadows(fraud: Yard, store: DeploymentStore) -> None:
    fraud.registry.set_alias("fraud", "champion", 2)
    found = store.create("api", "fraud", "champion", follow_alias="champion")
    assert found.config.champion == 2
    shadowed = store.set_shadow("api", "fraud/1", 0.1)
    assert [(s.version, s.share) for s in shadowed.config.shadows] == [(1, 0.1)]
    assert store.set_shadow("api", None, None).config.shadows == ()
    fraud.registry.set_alias("fraud", "champion", 1)
    assert store.sync_alias("api").config.champion == 1
    assert store.history("api")[-1].reason == "alias 'champion' moved: champion 2 -> 1"


def test_concurrent_updates_are_never_lost(store: DeploymentStore) -> None:
    store.create("api", "fraud", 1)
    store.update("api", lambda c: replace(c, canary=2, canary_weight=0))
    errors: list[BaseException] = []

    def bump() -> None:
        try:
            for _ in range(5):
                store.update("api", lambda c: replace(c, canary_weight=c.canary_weight + 1))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    found = store.get("api")
    assert found.config.canary_weight == 40
    assert found.revision == 42
    assert [h.revision for h in store.history("api")] == list(range(1, 43))


def test_bad_input_is_refused_with_what_and_why(store: DeploymentStore) -> None:
    store.create("api", "fraud", 1)
    controller = RolloutController(store)
    with pytest.raises(ValidationError, match="canary_weight must be between 0 and 100, got 150"):
        store.update("api", lambda c: replace(c, canary=2, canary_weight=150))
    with pytest.raises(ValidationError, match=r"canary_weight must be between 0 and 100, got -5"):
        store.update("api", lambda c: replace(c, canary=2, canary_weight=-5))
    with pytest.raises(VersionNotFoundError, match="model 'fraud' has no version 9"):
        store.update("api", lambda c: replace(c, canary=9, canary_weight=5))
    with pytest.raises(VersionNotFoundError, match="model 'fraud' has no version 9"):
        store.set_shadow("api", 9, 0.1)
    with pytest.raises(VersionNotFoundError, match="model 'fraud' has no version 9"):
        controller.start("api", 9)
    with pytest.raises(VersionNotFoundError, match="model 'fraud' has no version 7"):
        store.create("api2", "fraud", 7)
    with pytest.raises(ValidationError, match=r"shadows\[0\]\.share must be in \(0, 1\], got 1.5"):
        store.set_shadow("api", 2, 1.5)
    with pytest.raises(
        ValidationError,
        match=r"fraud/3 \(canary\) does not accept the inputs of the champion fraud/1: "
        r"missing inputs f6, f7",
    ):
        controller.start("api", 3)
    assert store.revision("api") == 1  # nothing refused was written
    controller.start("api", 2)
    with pytest.raises(ConflictError, match="a rollout of version 2 is progressing at 5%"):
        controller.start("api", 2)
    with pytest.raises(ConflictError, match="deployment 'api' already exists"):
        store.create("api", "fraud", 1)
    with pytest.raises(NotFoundError, match="no deployment named 'nope'"):
        store.get("nope")
    with pytest.raises(ValidationError, match="deployment name 'a b' is not allowed"):
        store.create("a b", "fraud", 1)
