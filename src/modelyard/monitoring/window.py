"""A window of served traffic as plain arrays: what live metrics, drift and alerts read.

Requests and prediction rows are two levels: one request may carry many rows.
Request-level arrays (``ts``, ``status``, ``latency_ms``, ...) have one entry per
request; row-level ones (``inputs``, ``outputs``, ``labels``) one per predicted
row, and ``row_request`` maps each row to its request's index.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# The arm the inference log records for a shadow copy: it answered nobody, so traffic
# figures that judge what users got leave it out.
SHADOW_ARM = "shadow"


@dataclass(frozen=True)
class Window:
    """Traffic of one deployment between ``start`` and ``end`` (UNIX seconds)."""

    deployment: str
    start: float
    end: float
    request_ids: np.ndarray  # object [requests]
    ts: np.ndarray  # float64 [requests]
    version: np.ndarray  # int64 [requests]
    arm: np.ndarray  # object [requests]
    status: np.ndarray  # int64 [requests]
    latency_ms: np.ndarray  # float64 [requests]
    row_request: np.ndarray  # int64 [rows]: index of the request each row came from
    inputs: dict[str, np.ndarray] = field(default_factory=dict)  # feature -> [rows]
    outputs: dict[str, np.ndarray] = field(default_factory=dict)  # output column -> [rows]
    labels: np.ndarray | None = None  # [rows], NaN/None where no feedback joined yet

    @property
    def requests(self) -> int:
        return len(self.ts)

    @property
    def rows(self) -> int:
        return len(self.row_request)

    def select(self, requests: np.ndarray) -> Window:
        """The sub-window of the requests where the boolean mask ``requests`` is true."""
        keep_rows = requests[self.row_request]
        renumber = np.cumsum(requests) - 1
        return Window(
            deployment=self.deployment,
            start=self.start,
            end=self.end,
            request_ids=self.request_ids[requests],
            ts=self.ts[requests],
            version=self.version[requests],
            arm=self.arm[requests],
            status=self.status[requests],
            latency_ms=self.latency_ms[requests],
            row_request=renumber[self.row_request[keep_rows]],
            inputs={k: v[keep_rows] for k, v in self.inputs.items()},
            outputs={k: v[keep_rows] for k, v in self.outputs.items()},
            labels=None if self.labels is None else self.labels[keep_rows],
        )


def empty_window(deployment: str, start: float, end: float) -> Window:
    """A window with no traffic."""
    return Window(
        deployment=deployment,
        start=start,
        end=end,
        request_ids=np.array([], dtype=object),
        ts=np.array([], dtype=np.float64),
        version=np.array([], dtype=np.int64),
        arm=np.array([], dtype=object),
        status=np.array([], dtype=np.int64),
        latency_ms=np.array([], dtype=np.float64),
        row_request=np.array([], dtype=np.int64),
    )
