"""What tracking stores: a run as read back, and one buffered metric point."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# One metric point as ``Run`` buffers it: (run_id, key, value, step, timestamp). A
# tuple, not a dataclass: logging a point is a list append and nothing more.
MetricPoint = tuple[str, str, float, int, float]


@dataclass(frozen=True)
class RunInfo:
    """A run as stored: identity, status, environment and what was logged (latest metrics)."""

    id: str
    name: str
    experiment: str
    status: str
    start_time: float
    end_time: float | None
    seed: int | None
    user: str | None
    git_commit: str | None
    environment: dict[str, Any]
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class RunPage:
    """One page of a run search, and the token of the next (None on the last page)."""

    runs: list[RunInfo]
    next_page_token: str | None
