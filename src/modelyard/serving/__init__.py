"""Serving: the Open Inference Protocol (KServe V2) and JSON-records HTTP API over
the registry's models, with validation, micro-batching, worker processes,
load shedding, Prometheus metrics and JSON logs.

Start a server with ``serve(settings, ["fraud@champion"])`` (what ``modelyard
serve`` runs), or build the ASGI app for one process with ``ServingApp``.
"""

from modelyard.serving.hosting.outcomes import (
    Answered,
    Failed,
    InferenceRecorder,
    RequestRecord,
)
from modelyard.serving.http.app import ServingApp
from modelyard.serving.process.launch import choose_refs, serve
from modelyard.serving.process.worker import run_worker
from modelyard.serving.telemetry.logsearch import LogQuery, search, summarize

__all__ = [
    "Answered",
    "Failed",
    "InferenceRecorder",
    "LogQuery",
    "RequestRecord",
    "ServingApp",
    "choose_refs",
    "run_worker",
    "search",
    "serve",
    "summarize",
]
