"""The seams where per-request consumers (the inference log of issue 4) attach.

Lists on ``ServingApp``, both called on the event loop, so hooks must be
quick and must not block (copy or encode what you need, hand it to your own
writer):

* ``on_batch``: after a micro-batch's model call and *before* its requests are
  answered, with a ``BatchEvent`` (the merged input, the outputs, and each
  request's id and rows). A hook that raises a ``ModelyardError`` fails the
  batch: every request in it is answered with that error (``OverloadedError``
  gives 503 + Retry-After). This is where a durable log writes, so that no
  request is answered unlogged.
* ``on_response``: after each inference response has been sent, successful or
  not, with an ``InferenceEvent``. A hook that raises is logged and skipped.
  ``on_failure`` is the same for failed requests only, and costs nothing per
  successful one (the inference log records successes from ``on_batch``).
* ``on_shadow`` (see ``shadow``): after a shadow version answered (or failed) a
  mirrored copy of a request, with a ``shadow.ShadowEvent``; raising is counted.

One micro-batch may hold requests of several deployments and references that
share a version, and shadow copies (``arm == "shadow"``): read the deployment
and the arm per request, from ``RequestInfo``, not per batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from modelyard.serving.hosting.validation import ModelInput

Outputs = dict[str, np.ndarray]


class RequestInfo(Protocol):
    """What a batch hook learns about each request in the batch."""

    request_id: str
    ts: float  # wall-clock time the request arrived
    # The name the request was sent to: a deployment, else the served model's name.
    deployment: str
    # The deployment's arm that answers ("champion", "canary", an experiment arm),
    # "primary" for a plain reference, "pinned" for a version named in the path, or
    # "shadow" for a shadow copy.
    arm: str


@dataclass(frozen=True, slots=True)
class BatchEvent:
    """One model call: ``requests`` are ``(request, start, stop)``, rows ``start:stop`` of
    ``model_input`` and of each output being that request's. Arrays are the batch's own:
    do not modify them, and copy what you keep past the call."""

    model: str
    version: int
    input_names: tuple[str, ...]
    model_input: ModelInput
    outputs: Outputs
    requests: list[tuple[RequestInfo, int, int]]
    seconds: float


@dataclass(frozen=True, slots=True)
class InferenceEvent:
    """One answered inference request (successful or not).

    ``model_input`` holds only this request's rows; ``outputs`` is the whole
    batch the request ran in, of which rows ``start:stop`` are this request's.
    Both are ``None`` when the request failed before or during the model call.
    """

    request_id: str
    model: str
    version: str
    status: int
    code: str | None
    ts: float
    duration_s: float
    rows: int
    model_input: ModelInput | None
    outputs: Outputs | None
    start: int
    stop: int
    deployment: str = ""  # see ``RequestInfo``; empty only for events built by hand
    arm: str = "primary"


BatchHook = Callable[[BatchEvent], None]
ResponseHook = Callable[[InferenceEvent], None]
