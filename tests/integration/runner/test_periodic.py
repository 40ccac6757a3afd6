"""The runner's loops: a tick that raises is logged and the loop carries on."""

from __future__ import annotations

import threading
from pathlib import Path

import orjson

from modelyard.config import Settings
from modelyard.runner.periodic import EventLog, PeriodicLoop
from modelyard.serving.telemetry.jsonlog import JsonLog


class Flaky:
    name = "flaky"
    failure_event = "flaky_failed"
    interval_s = 0.01
    wait_first = False

    def __init__(self) -> None:
        self.calls = 0
        self.third = threading.Event()

    def tick(self, log: EventLog) -> None:
        self.calls += 1
        if self.calls == 3:
            self.third.set()
        if self.calls == 1:
            raise RuntimeError("the database blinked")


def test_a_failing_tick_is_logged_and_the_loop_goes_on(settings: Settings) -> None:
    flaky = Flaky()
    loop = PeriodicLoop(
        flaky, lambda name: JsonLog(settings.resolved_log_path, worker=name)
    ).start()
    assert flaky.third.wait(10)
    loop.stop()
    assert loop.ticks >= 2  # ticks that succeeded
    lines = [
        orjson.loads(line) for line in Path(settings.resolved_log_path).read_bytes().splitlines()
    ]
    failed = [line for line in lines if line["event"] == "flaky_failed"]
    assert failed
    assert failed[0]["worker"] == "flaky"
    assert "the database blinked" in failed[0]["error"]
