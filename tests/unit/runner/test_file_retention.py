"""The JSON log's retention job: the sweep runs at the job's clock, and only work is logged."""

from __future__ import annotations

from typing import Any

from modelyard.runner.retention import FileRetentionJob


class Recorded:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def emit(self, level: str, event: str, fields: dict[str, Any], ts: float | None = None) -> None:
        self.lines.append((event, fields))

    def flush(self) -> None: ...

    def close(self) -> None: ...


def test_the_sweep_runs_at_the_clock_and_logs_only_what_it_did() -> None:
    calls: list[float] = []
    answers = iter(
        [
            {"rotated": None, "deleted": [], "indexed": 0},
            {"rotated": "serving.jsonl.20270115T080000000000Z", "deleted": [], "indexed": 10},
        ]
    )

    def sweep(now: float) -> dict[str, Any]:
        calls.append(now)
        return next(answers)

    job = FileRetentionJob(sweep, interval_s=3600, clock=lambda: 1_800_000_000.0)
    log = Recorded()
    job.tick(log)
    job.tick(log)
    assert calls == [1_800_000_000.0, 1_800_000_000.0]
    assert [event for event, _ in log.lines] == ["log_files_swept"]
    assert log.lines[0][1]["indexed"] == 10
