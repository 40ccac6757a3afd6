"""A server whose deployment targets KServe pushes its InferenceService after each change:
the leader's runner writes it to the GitOps folder of ``runner.platform_sink`` with the
canary at the rollout's step, and again, without the canary, once an operator aborts the
rollout from another process; each push is an event of the deployment."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from modelyard.config import load_settings
from modelyard.routing import RolloutController, RolloutPolicy, Target
from modelyard.yard import Yard

TARGET = Target("kserve", options={"image": "registry.example.com/modelyard:1"})


def test_each_change_reaches_the_gitops_folder(
    fresh_home: Path, tmp_path: Path, launch_server: Any, wait_until: Callable[..., Any]
) -> None:
    settings = load_settings(home=fresh_home, environ={})
    with Yard(settings) as yard:
        yard.deployments.create("checkout", "fraud", 1, target=TARGET)
        policy = RolloutPolicy(step_weights=(5, 100), interval_s=3600)
        RolloutController(yard.deployments).start("checkout", "2", policy)
    folder = tmp_path / "gitops"
    launch_server(
        fresh_home,
        [],
        settings={"deployments": "checkout"},
        environ={"MODELYARD_RUNNER__PLATFORM_SINK": str(folder)},
    )
    service = folder / "checkout" / "03-inferenceservice-checkout.yaml"

    def canary() -> list[dict[str, Any]] | None:
        if not service.exists():
            return None
        return list(yaml.safe_load(service.read_text())["spec"].get("canary", []))

    assert wait_until(lambda: canary() is not None, 30), "nothing was pushed"
    assert [c["trafficPercent"] for c in canary() or []] == [5]
    with Yard(settings) as yard:
        RolloutController(yard.deployments).abort("checkout", note="test: rolled back")
    assert wait_until(lambda: canary() == [], 30), "the rollback was not pushed"
    with Yard(settings) as yard:
        pushed = yard.deployments.events("checkout", "platform.pushed")
        revision = yard.deployments.get("checkout").revision
    assert [e.payload["revision"] for e in pushed][0] == revision
    assert {e.payload["where"] for e in pushed} == {str(folder)}
