"""What a served request becomes: its ``RequestRecord``, and the outcomes the inference
log records through the ``InferenceRecorder`` port.

A request's record is fixed once routing has chosen who answers it (``pipeline``) and
travels with the request through the batcher unchanged. The recorder sees every
outcome through one call, ``record``:

* ``Answered``: one micro-batch's model call, after the call and *before* any of its
  requests is answered: the merged input, the outputs and each request's rows. A
  recorder that raises a ``ModelyardError`` fails the batch: every request in it is
  answered with that error (``OverloadedError`` gives 503 + Retry-After). This is
  where a durable log writes, so that no request is answered unlogged.
* ``Failed``: one request that passed validation and then failed (the model raised,
  its deadline passed, the queue or the log refused it), when its error is known.

Both are called on the event loop, so a recorder must be quick and must not block
(copy or encode what it keeps, hand it to its own writer). One micro-batch may hold
requests of several deployments and references that share a version, and shadow
copies (``arm == "shadow"``): read the deployment and the arm per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np

from modelyard.monitoring.window import SHADOW_ARM
from modelyard.serving.hosting.validation import ModelInput

__all__ = [
    "PINNED_ARM",
    "PRIMARY_ARM",
    "SHADOW_ARM",
    "Answered",
    "Failed",
    "InferenceRecorder",
    "RequestRecord",
]

Outputs = dict[str, np.ndarray]
# The arm of a request that names a version of a deployment in its path, of a request
# to a served reference, and of a shadow copy.
PINNED_ARM = "pinned"
PRIMARY_ARM = "primary"


class RequestRecord:
    """One request's facts once routed: built once per request, never changed after.

    A slotted class with ``Final`` attributes rather than a frozen dataclass or a
    ``NamedTuple``: those cost a Python-level ``__new__``/``object.__setattr__`` per
    field and unspecialised attribute reads, ~1,000 instructions a request on the hot
    path (``benchmarks/serving/bench_instructions.py``); mypy still refuses a write.
    """

    __slots__ = ("arm", "deployment", "request_id", "ts")

    def __init__(self, request_id: str, ts: float, deployment: str, arm: str) -> None:
        self.request_id: Final = request_id
        self.ts: Final = ts  # wall-clock time the request arrived
        # The name the request was sent to: a deployment, else the served model's name.
        self.deployment: Final = deployment
        # The deployment's arm that answers ("champion", "canary", an experiment arm),
        # ``PRIMARY_ARM`` for a plain reference, ``PINNED_ARM`` or ``SHADOW_ARM``.
        self.arm: Final = arm

    def __repr__(self) -> str:
        return f"RequestRecord({self.request_id!r}, {self.ts!r}, {self.deployment!r}, {self.arm!r})"


@dataclass(frozen=True, slots=True)
class Answered:
    """One model call: ``requests`` are ``(record, start, stop)``, rows ``start:stop`` of
    ``model_input`` and of each output being that request's. Arrays are the batch's own:
    do not modify them, and copy what you keep past the call."""

    model: str
    version: int
    input_names: tuple[str, ...]
    model_input: ModelInput
    outputs: Outputs
    requests: list[tuple[RequestRecord, int, int]]
    seconds: float


@dataclass(frozen=True, slots=True)
class Failed:
    """One validated request answered with an error instead of a prediction."""

    record: RequestRecord
    model: str
    version: int
    status: int
    code: str
    latency_s: float
    rows: int


class InferenceRecorder(Protocol):
    """Where outcomes go (the inference log's side of serving)."""

    def record(self, outcome: Answered | Failed) -> None: ...
