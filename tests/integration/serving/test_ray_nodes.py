"""A deployment that targets Ray, served on a Ray cluster of two nodes: its replicas, sized
by the target, land on both nodes, and both answer, each request reaching the inference
log once (a replica on another node than the server's driver stores its own log).

The cluster is two ``ray start`` processes on this machine, one CPU each, the second
joining the first (``--address``), as a second machine would; each replica asks for one
CPU, so two replicas cannot share a node (Ray's controller logs each replica's node). The
requests go through the head's Serve proxy: the second node's proxy cannot bind the same
port on the same machine (Ray reports it not ready), as it would on a machine of its own.
The head gets a temporary directory of its own,
so that no other Ray user on this machine finds it (``ray.init()`` looks for the last
cluster started in the default one); both are stopped by their process ids.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.conftest import free_port
from tests.integration.serving.test_ray_backend import logged_request_ids

from modelyard.config import load_settings
from modelyard.routing import Target
from modelyard.yard import Yard

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("ray") is None,
        reason="the ray backend needs Ray Serve: pip install 'modelyard[ray]'",
    ),
]


def _stop(process: subprocess.Popen[bytes]) -> None:
    """``ray start --block`` stops the node's processes on SIGTERM; its process group
    (its own session) is killed after that, in case one was left."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture
def two_nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The address of a Ray cluster of two nodes with one CPU each."""
    # A token some earlier Ray command left in ~/.ray/auth_token made the nodes ask for
    # it and the server's driver not send it; this cluster, on loopback, uses none.
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    ray = str(Path(sys.executable).parent / "ray")
    port = free_port()
    # short: Ray's unix sockets live under it, and their paths may not pass 107 bytes
    temp_dir = tempfile.mkdtemp(prefix="ry", dir="/tmp")
    env = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        # Ray Serve's proxy sends a request to a replica of its own node while that one has
        # room; here every request would then stay on the head's replica.
        "RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING": "0",
    }
    common = ["--num-cpus=1", "--block", "--disable-usage-stats"]
    started: list[subprocess.Popen[bytes]] = []
    try:
        for name, args in (
            ("head", ["--head", f"--port={port}", f"--temp-dir={temp_dir}"]),
            ("worker", [f"--address=127.0.0.1:{port}"]),
        ):
            with (tmp_path / f"ray-{name}.log").open("wb") as out:
                started.append(
                    subprocess.Popen(
                        [ray, "start", *args, "--include-dashboard=false", *common]
                        if name == "head"
                        else [ray, "start", *args, *common],
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        yield f"127.0.0.1:{port}"
    finally:
        for process in reversed(started):
            _stop(process)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_replicas_on_both_nodes_answer_and_log_once(
    two_nodes: str,
    fresh_home: Path,
    launch_server: Any,
    fraud_body: bytes,
    wait_until: Callable[..., Any],
) -> None:
    with Yard(load_settings(home=fresh_home, environ={})) as yard:
        yard.deployments.create("spread", "fraud", 1, target=Target("ray", min_replicas=2))
    server = launch_server(
        fresh_home, [], settings={"deployments": "spread", "ray_address": two_nodes}
    )
    assert "serving on Ray Serve" in server.stderr()  # chosen by the target, not a flag
    sent: list[str] = []

    def answered_by() -> set[str]:
        wanted, workers = set(sent), set()
        for line in server.log_path.read_text().splitlines():
            record = json.loads(line)
            if record.get("request_id") in wanted:
                workers.add(record.get("worker"))
        return workers

    def both_replicas_answer(client: httpx.Client) -> bool:
        # The server is ready once one replica is; the other may take a few seconds more.
        for _ in range(10):
            request_id = f"two-nodes-{len(sent)}"
            answer = client.post(
                f"{server.url}/v2/models/spread/infer",
                content=fraud_body,
                headers={"content-type": "application/json", "x-request-id": request_id},
            )
            assert answer.status_code == 200, answer.text
            sent.append(request_id)
        return len(answered_by()) == 2  # the replica of each node

    with httpx.Client(timeout=30) as client:
        assert wait_until(lambda: both_replicas_answer(client), 60), answered_by()
    assert wait_until(lambda: set(sent) <= logged_request_ids(fresh_home), 30)
