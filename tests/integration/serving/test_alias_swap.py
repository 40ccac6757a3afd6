"""Moving an alias under load: every request is answered 200, the new version takes over
in every worker, and the per-worker metrics add up across workers."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from modelyard.config import load_settings
from modelyard.loadtest.generator import LoadPlan
from modelyard.serving.telemetry.logsearch import LogQuery, search
from modelyard.yard import Yard

from .conftest import load_in_background


def requests_counted(metrics: str) -> int:
    pattern = (
        r'^modelyard_requests_total\{model="fraud",status="(\d+)",version="\d+"\} ([0-9.e+]+)$'
    )
    return int(sum(float(m.group(2)) for m in re.finditer(pattern, metrics, re.MULTILINE)))


def test_alias_move_under_load_fails_nothing(
    fresh_home: Path,
    launch_server: Any,
    start_load: Any,
    fraud_body: bytes,
    wait_until: Callable[..., Any],
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
    outcomes = load.stop()

    failures = [o for o in outcomes if o.status != 200]
    assert failures == [], f"{len(failures)} of {len(outcomes)} failed: {failures[:5]}"
    versions = [o.version for o in outcomes]
    assert versions[0] == "1"
    assert versions[-1] == "2"
    assert set(versions) == {"1", "2"}

    # Both workers swapped (one model_swapped line each) and unloaded version 1; the
    # workers flush their JSON logs every 0.2 s.
    def logged(event: str) -> list[dict[str, Any]]:
        return search(server.log_path.read_bytes().splitlines(), LogQuery(event=event), None)

    unloaded = wait_until(lambda: len(logged("model_unloaded")) >= 2, 10)
    assert unloaded, logged("model_unloaded")
    swaps = logged("model_swapped")
    assert len({s["worker"] for s in swaps}) == 2
    assert all((s["from_version"], s["version"]) == (1, 2) for s in swaps)
    assert len(logged("model_unloaded")) == 2

    # Each worker publishes its counts within a second; any worker's /metrics has them all.
    def scrape() -> str:
        return httpx.get(f"{server.url}/metrics").text

    counted = wait_until(lambda: requests_counted(scrape()) >= len(outcomes), 10)
    assert counted, f"{requests_counted(scrape())} counted of {len(outcomes)} answered"
    # each worker's count of its swap is published on its own second, like its requests
    swapped = 'modelyard_model_loads_total{model="fraud",outcome="swapped_in",version="2"} 2.0'
    assert wait_until(lambda: swapped in scrape(), 10), scrape()
    metrics = scrape()
    assert requests_counted(metrics) == len(outcomes)
    assert re.search(r"^modelyard_workers 2\.0$", metrics, re.MULTILINE)
    assert 'modelyard_model_version{model="fraud",ref="fraud@champion"} 2.0' in metrics


RATE = 600.0  # requests/s, open loop: above the 500/s the README's promise names
RUN_S = 4.0


def test_alias_move_and_back_at_500_per_second_fails_nothing(
    fresh_home: Path, launch_server: Any, fraud_body: bytes, wait_until: Any
) -> None:
    server = launch_server(fresh_home, ["fraud@champion"], workers=2)
    plan = LoadPlan(
        server.url,
        "/v2/models/fraud/infer",
        fraud_body,
        connections=16,
        rate=RATE,
        duration_s=RUN_S,
        warmup_s=0.3,
        keep_header="x-model-version",
    )
    started = time.monotonic()
    running = load_in_background(plan)

    def answered_by(version: str) -> bool:
        # Several probes in a row, so that both workers (each picked by the kernel) answer.
        return all(
            httpx.post(
                f"{server.url}/v2/models/fraud/infer",
                content=fraud_body,
                headers={"content-type": "application/json"},
            ).headers.get("x-model-version")
            == version
            for _ in range(8)
        )

    assert wait_until(lambda: time.monotonic() - started > 0.8, 5)  # under load first
    with Yard(load_settings(home=fresh_home, environ={})) as yard:
        yard.registry.set_alias("fraud", "champion", 2, reason="test: promote v2")
        assert wait_until(lambda: answered_by("2"), RUN_S), "v2 did not take over"
        yard.registry.set_alias("fraud", "champion", 1, reason="test: back to v1")
        assert wait_until(lambda: answered_by("1"), RUN_S), "v1 did not come back"
    moved_back_after = time.monotonic() - started
    result = running.result(timeout=RUN_S + 30)
    print(  # the figures, shown when the test fails (or with -s)
        f"{result.ok / result.duration_s:.0f}/s answered of {RATE:.0f}/s, errors "
        f"{result.errors}, p99 {result.latency.p99_s * 1e3:.1f} ms, moved back after "
        f"{moved_back_after:.2f} s"
    )

    # Figures on this 2-core machine (2026-12): 600/s offered, ~598/s answered, 0 errors,
    # both moves done within ~2.5 s of the run's start.
    assert result.errors == {}, f"{result.error_count} of {result.requests}: {result.errors}"
    assert result.ok / result.duration_s >= 500, f"only {result.ok / result.duration_s:.0f}/s"
    assert moved_back_after < RUN_S, f"the moves took {moved_back_after:.1f} s, past the load"
    versions = [r.header for r in result.responses]
    assert len(versions) == result.requests
    # The answers go 1 ... 2 ... 1: the move and the move back each took effect.
    switches = [v for n, v in enumerate(versions) if n == 0 or v != versions[n - 1]]
    assert switches[0] == "1"
    assert switches[-1] == "1"
    assert "2" in switches
    assert set(versions) == {"1", "2"}


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
