"""Serving: the Open Inference Protocol (KServe V2) and JSON-records HTTP API over
the registry's models, with validation, micro-batching, worker processes,
load shedding, Prometheus metrics and JSON logs.

Start a server with ``serve(settings, ["fraud@champion"])`` (what ``modelyard
serve`` runs), or build the ASGI app for one process with ``ServingApp``.
"""

from modelyard.serving.app import ServingApp
from modelyard.serving.hooks import InferenceEvent, ResponseHook
from modelyard.serving.launch import choose_refs, serve
from modelyard.serving.logsearch import LogQuery, search, summarize
from modelyard.serving.server import run_worker

__all__ = [
    "InferenceEvent",
    "LogQuery",
    "ResponseHook",
    "ServingApp",
    "choose_refs",
    "run_worker",
    "search",
    "serve",
    "summarize",
]
