"""A server configured as a KServe predictor's pods (docs/kubernetes.md): told its one
deployment, it serves that alone, and pinned to a version it answers every request of
the deployment with that version while it is an arm, then as the store says."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from modelyard.config import load_settings
from modelyard.routing import RolloutController, RolloutPolicy
from modelyard.yard import Yard


def test_a_pod_pinned_to_the_canary_answers_with_it_until_the_rollback(
    fresh_home: Path,
    launch_server: Any,
    fraud_body: bytes,
    wait_until: Callable[..., Any],
) -> None:
    with Yard(load_settings(home=fresh_home, environ={})) as yard:
        yard.deployments.create("checkout", "fraud", 1)
        policy = RolloutPolicy(step_weights=(5, 100), interval_s=3600)
        RolloutController(yard.deployments).start("checkout", "2", policy)
    server = launch_server(
        fresh_home, [], settings={"deployments": "checkout", "pinned_version": "2"}
    )
    headers = {"content-type": "application/json"}

    def versions() -> set[str | None]:
        answers = [
            httpx.post(
                f"{server.url}/v2/models/checkout/infer", content=fraud_body, headers=headers
            )
            for _ in range(20)
        ]
        assert {a.status_code for a in answers} == {200}
        return {a.headers.get("x-model-version") for a in answers}

    assert versions() == {"2"}  # the canary's 5% is KServe's to send, not this pod's
    # Told its deployment, it serves no registered model besides it.
    assert httpx.get(f"{server.url}/v2/models/fraud").status_code == 404
    with Yard(load_settings(home=fresh_home, environ={})) as yard:
        RolloutController(yard.deployments).abort("checkout", note="test: rolled back")
    assert wait_until(lambda: versions() == {"1"}, 30), "the pod kept answering the canary"
