"""``modelyard worker`` as a process: its schedule retrains, its heartbeat shows in
``/metrics``, and SIGTERM stops it cleanly."""

from __future__ import annotations

import re
import signal
import socket
import time

import httpx

from .conftest import Project


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_worker_runs_a_schedule_beats_and_stops_on_sigterm(project: Project) -> None:
    project.cli(
        "retraining", "set", "scoring", "--pipeline", "concept:from_file",
        "--schedule", "* * * * *", "--min-delta", "0.02",
    )  # fmt: skip
    port = free_port()
    worker = project.popen(
        "worker", "--metrics-port", str(port), "--check-interval", "0.5",
        MODELYARD_RETRAINING__HEARTBEAT_INTERVAL_S="0.2",
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 150  # the schedule fires at the next minute
        text = ""
        while time.monotonic() < deadline:
            assert worker.poll() is None, worker.communicate()
            try:
                text = httpx.get(url, timeout=5).text
            except httpx.TransportError:
                time.sleep(0.2)
                continue
            if 'modelyard_retrains_total{deployment="scoring",status="rolled_out"} 1.0' in text:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(text)
        first = heartbeat(text)
        assert time.time() - first < 10
        time.sleep(0.5)  # a few beats
        assert heartbeat(httpx.get(url, timeout=5).text) > first
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert "worker stopped" in out
    (story,) = project.json("history", "scoring")
    assert story["trigger"] == "schedule"


def heartbeat(metrics: str) -> float:
    found = re.search(r"^modelyard_worker_heartbeat_timestamp_seconds (\S+)$", metrics, re.M)
    assert found is not None, metrics
    return float(found[1])
