"""Moving an alias under load: every request is answered 200, the new version takes over
in every worker, and the per-worker metrics add up across workers."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx

from modelyard.config import load_settings
from modelyard.serving.telemetry.logsearch import LogQuery, search
from modelyard.yard import Yard


def requests_counted(metrics: str) -> int:
    pattern = (
        r'^modelyard_requests_total\{model="fraud",status="(\d+)",version="\d+"\} ([0-9.e+]+)$'
    )
    return int(sum(float(m.group(2)) for m in re.finditer(pattern, metrics, re.MULTILINE)))


def test_alias_move_under_load_fails_nothing(
    fresh_home: Path, launch_server: Any, start_load: Any, fraud_body: bytes
) -> None:
    server = launch_server(fresh_home, ["fraud@champion"], workers=2)
    load = start_load(server.url, "/v2/models/fraud/infer", fraud_body)
    assert load.wait_for(lambda outcomes: len(outcomes) > 200, timeout=30)

    with Yard(load_settings(home=fresh_home, environ={})) as yard:
        yard.registry.set_alias("fraud", "champion", 2, reason="test: promote v2")

    def all_on_two(outcomes: list[Any]) -> bool:
        tail = outcomes[-100:]
        return len(tail) == 100 and all(o.version == "2" for o in tail)

    assert load.wait_for(all_on_two, timeout=30), "the new version did not take over"
    time.sleep(0.3)
    outcomes = load.stop()

    failures = [o for o in outcomes if o.status != 200]
    assert failures == [], f"{len(failures)} of {len(outcomes)} failed: {failures[:5]}"
    versions = [o.version for o in outcomes]
    assert versions[0] == "1"
    assert versions[-1] == "2"
    assert set(versions) == {"1", "2"}

    # Both workers swapped (one model_swapped line each) and unloaded version 1.
    time.sleep(0.5)
    lines = server.log_path.read_bytes().splitlines()
    swaps = search(lines, LogQuery(event="model_swapped"), None)
    assert len({s["worker"] for s in swaps}) == 2
    assert all((s["from_version"], s["version"]) == (1, 2) for s in swaps)
    assert len(search(lines, LogQuery(event="model_unloaded"), None)) == 2

    # Each worker publishes its counts within a second; any worker's /metrics has them all.
    time.sleep(1.5)
    metrics = httpx.get(f"{server.url}/metrics").text
    assert requests_counted(metrics) == len(outcomes)
    assert re.search(r"^modelyard_workers 2\.0$", metrics, re.MULTILINE)
    assert 'modelyard_model_version{model="fraud",ref="fraud@champion"} 2.0' in metrics
    assert (
        'modelyard_model_loads_total{model="fraud",outcome="swapped_in",version="2"} 2.0' in metrics
    )


def test_a_corrupt_artifact_on_an_alias_move_keeps_the_old_version_serving(
    fresh_home: Path,
    launch_server: Any,
    start_load: Any,
    fraud_body: bytes,
    wait_until: Any,
) -> None:
    # Issue 19, item 7: v2's blob is damaged on disk after registration; moving the alias
    # to it under load must be refused (hash check) while v1 keeps answering every request.
    with Yard(load_settings(home=fresh_home, environ={})) as yard:
        digest = yard.registry.get_version("fraud", 2).artifact_digest
        assert digest != yard.registry.get_version("fraud", 1).artifact_digest
    blob = next(fresh_home.rglob(digest))
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size: only the hash can tell
    blob.write_bytes(bytes(data))

    server = launch_server(fresh_home, ["fraud@champion"])
    load = start_load(server.url, "/v2/models/fraud/infer", fraud_body)
    assert load.wait_for(lambda outcomes: len(outcomes) > 200, timeout=30)

    with Yard(load_settings(home=fresh_home, environ={})) as yard:
        yard.registry.set_alias("fraud", "champion", 2, reason="test: promote a corrupt v2")

    def refusals() -> list[dict[str, Any]]:
        lines = server.log_path.read_bytes().splitlines()
        return search(lines, LogQuery(event="model_load_failed"), None)

    refused = wait_until(refusals, timeout=30)
    assert refused, "the server did not report the refused load"
    assert (refused[0]["model"], refused[0]["version"]) == ("fraud", 2)
    assert "corrupt" in refused[0]["error"]
    # Keep the load on for another 2,000 requests after the refusal (~3 s at ~750 req/s).
    after = len(load.outcomes)
    assert load.wait_for(lambda outcomes: len(outcomes) > after + 2000, timeout=60)
    outcomes = load.stop()

    failures = [o for o in outcomes if o.status != 200]
    assert failures == [], f"{len(failures)} of {len(outcomes)} failed: {failures[:5]}"
    assert {o.version for o in outcomes} == {"1"}
    rate = len(outcomes) / (outcomes[-1].at - outcomes[0].at)
    assert rate > 100, f"the load ran at {rate:.0f} req/s, below the scale this test claims"
    lines = server.log_path.read_bytes().splitlines()
    assert search(lines, LogQuery(event="model_swapped"), None) == []
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
