"""``modelyard worker`` as a process: its schedule retrains, its heartbeat shows in
``/metrics``, and SIGTERM stops it cleanly."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from typing import Any

import httpx

from .conftest import Project


def test_the_worker_runs_a_schedule_beats_and_stops_on_sigterm(
    project: Project, wait_until: Callable[..., Any], unused_port: Callable[[], int]
) -> None:
    project.cli(
        "retraining", "set", "scoring", "--pipeline", "concept:from_file",
        "--schedule", "* * * * *", "--min-delta", "0.02",
    )  # fmt: skip
    port = unused_port()
    worker = project.popen(
        "worker", "--metrics-port", str(port), "--check-interval", "0.5",
        MODELYARD_RETRAINING__HEARTBEAT_INTERVAL_S="0.2",
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/metrics"

        def metrics() -> str:
            assert worker.poll() is None, worker.communicate()
            try:
                return httpx.get(url, timeout=5).text
            except httpx.TransportError:
                return ""

        done = 'modelyard_retrains_total{deployment="scoring",status="rolled_out"} 1.0'

        def retrained() -> str:
            text = metrics()
            return text if done in text else ""

        text = wait_until(retrained, 150)  # the schedule fires at the next minute
        assert done in text, metrics()
        first = heartbeat(text)
        assert time.time() - first < 10
        assert wait_until(lambda: heartbeat(metrics()) > first, 10)
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
