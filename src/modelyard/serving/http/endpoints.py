"""The endpoints: what each route answers, given the request's ``Call`` and body.

Each handler returns a ``pipeline.Reply`` or raises a ``ModelyardError``, which
``app.ServingApp`` turns into the protocol's error object. The two inference routes
hand their request to the ``InferencePipeline`` with their wire format.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Protocol

import orjson

from modelyard.errors import ModelNotReadyError, RouteNotFoundError
from modelyard.monitoring.feedback import FeedbackResult
from modelyard.serving.hosting.manager import ModelTable
from modelyard.serving.http.mount import MountedApp
from modelyard.serving.http.recommend import Recommend
from modelyard.serving.http.routes import Endpoint
from modelyard.serving.pipeline import OIP, RECORDS, Call, InferencePipeline, Reply
from modelyard.serving.telemetry.metrics import CONTENT_TYPE as METRICS_TYPE
from modelyard.serving.wire import binary, classification
from modelyard.serving.wire.json_body import decode_json
from modelyard.serving.wire.oip import PLATFORMS

Handler = Callable[[Endpoint, Call, bytes], Awaitable[Reply]]


class FeedbackPort(Protocol):
    """What the app asks of feedback (``recording.FeedbackReceiver``)."""

    def __call__(self, document: object) -> FeedbackResult:
        """Store a parsed body's labels (blocking: run off the event loop)."""
        ...

    @property
    def waiting(self) -> int: ...

    def check_pending(self) -> None:
        """Settle pending labels whose wait ended (blocking)."""
        ...

    def counts(self) -> dict[tuple[str], int]: ...


class ServerView(Protocol):
    """What the endpoints read from the app."""

    table: ModelTable
    pipeline: InferencePipeline
    # Stores posted labels (a blocking write; run off the event loop). None: disabled.
    feedback: FeedbackPort | None
    # Applies pushed feature events (blocking, like feedback). None: no feature store.
    feature_push: Callable[[object], dict[str, Any]] | None
    # The dashboard, answering /ui (None: not served).
    ui: MountedApp | None

    @property
    def ready(self) -> bool: ...

    def metrics_text(self) -> bytes: ...

    def openapi_json(self) -> bytes: ...


def _json(status: int, document: Any) -> Reply:
    return Reply(status, orjson.dumps(document))


class Endpoints:
    """Endpoint handlers over a ``ServerView``."""

    def __init__(self, view: ServerView, *, server_version: str) -> None:
        self._view = view
        self._server_version = server_version
        pipeline = view.pipeline
        self.handlers: dict[str, Handler] = {
            # The inference routes are the pipeline's, with their wire format.
            "infer": partial(pipeline.run, OIP),
            "predict": partial(pipeline.run, RECORDS),
            "recommend": Recommend(pipeline),
            "model_metadata": self.model_metadata,
            "model_ready": self.model_ready,
            "model_status": self.model_ready,
            "server_metadata": self.server_metadata,
            "live": self.live,
            "ready": self.ready,
            "repository_index": self.repository_index,
            "metrics": self.metrics,
            "openapi": self.openapi,
            "feedback": self.feedback,
            "features_push": self.features_push,
            "ui": self.ui,
        }

    async def ui(self, route: Endpoint, call: Call, body: bytes) -> Reply:
        mounted = self._view.ui
        if mounted is None:
            raise RouteNotFoundError("this server does not serve the dashboard (serving.ui)")
        return await mounted.answer(call, body)

    # -- metadata and health ------------------------------------------------------------

    async def model_metadata(self, route: Endpoint, call: Call, body: bytes) -> Reply:
        assert route.model is not None
        runtime = self._view.table.lookup(route.model, route.version)
        document = {
            "name": runtime.name,
            "versions": self._view.table.versions_of(runtime.name),
            "platform": PLATFORMS.get(runtime.flavour, runtime.flavour),
            **runtime.tensors,
        }
        return Reply(200, orjson.dumps(document), model=runtime.name, version=runtime.version_text)

    async def model_ready(self, route: Endpoint, call: Call, body: bytes) -> Reply:
        assert route.model is not None
        try:
            runtime = self._view.table.lookup(route.model, route.version)
        except ModelNotReadyError:
            return _json(503, {"name": route.model, "ready": False})
        ready = self._view.ready
        document = {"name": route.model, "ready": ready}
        return Reply(
            200 if ready else 503,
            orjson.dumps(document),
            model=runtime.name,
            version=runtime.version_text,
        )

    async def server_metadata(self, route: Endpoint, call: Call, body: bytes) -> Reply:
        document = {
            "name": "modelyard",
            "version": self._server_version,
            "extensions": [binary.EXTENSION, classification.EXTENSION],
        }
        return _json(200, document)

    async def live(self, route: Endpoint, call: Call, body: bytes) -> Reply:
        return _json(200, {"live": True})

    async def ready(self, route: Endpoint, call: Call, body: bytes) -> Reply:
        ready = self._view.ready
        return _json(200 if ready else 503, {"ready": ready})

    async def repository_index(self, route: Endpoint, call: Call, body: bytes) -> Reply:
        index = []
        for served in self._view.table.served:
            runtime = served.runtime
            index.append(
                {
                    "name": served.ref.name,
                    "version": runtime.version_text if runtime else "",
                    "state": "READY" if runtime else "UNAVAILABLE",
                    "reason": f"serving {served.text}" if runtime else f"loading {served.text}",
                }
            )
        for name, entry in sorted(self._view.table.deployments.items()):
            arms = ", ".join(f"{arm} {v}" for arm, v in entry.deployment.arms.items())
            index.append(
                {
                    "name": name,
                    "version": entry.champion.version_text,
                    "state": "READY",
                    "reason": f"deployment of {entry.champion.name}: {arms}",
                }
            )
        return _json(200, index)

    async def feedback(self, route: Endpoint, call: Call, body: bytes) -> Reply:
        receiver = self._view.feedback
        if receiver is None:
            raise RouteNotFoundError("this server does not accept feedback (no inference log)")
        document = decode_json(body)
        result = await asyncio.get_running_loop().run_in_executor(None, receiver, document)
        return _json(200, result.document())

    async def features_push(self, route: Endpoint, call: Call, body: bytes) -> Reply:
        pusher = self._view.feature_push
        if pusher is None:
            raise RouteNotFoundError("this server has no feature store to push to")
        document = decode_json(body)
        result = await asyncio.get_running_loop().run_in_executor(None, pusher, document)
        return _json(200, result)

    async def metrics(self, route: Endpoint, call: Call, body: bytes) -> Reply:
        return Reply(200, self._view.metrics_text(), METRICS_TYPE.encode())

    async def openapi(self, route: Endpoint, call: Call, body: bytes) -> Reply:
        return Reply(200, self._view.openapi_json())
