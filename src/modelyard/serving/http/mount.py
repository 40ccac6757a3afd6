"""Another ASGI app answering one path prefix of the server (the dashboard under ``/ui``).

The worker's HTTP path calls ``ServingApp.handle`` with a parsed request, not ASGI
messages, so a mounted app is called here with a scope built from the request and
its whole body, and its answer is gathered into one ``Reply``. The app is built on
its first request (``factory``): a worker that nobody opens the dashboard on never
imports it, and starts and serves as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from modelyard.serving.pipeline import Call, Reply

Asgi = Callable[..., Any]  # an ASGI application: (scope, receive, send) -> awaitable


class MountedApp:
    """An ASGI app built by ``factory`` on first use, answering whole requests."""

    def __init__(self, factory: Callable[[], Asgi], server: tuple[str, int]) -> None:
        self._factory = factory
        self._app: Asgi | None = None
        self._server = server

    async def answer(self, call: Call, body: bytes) -> Reply:
        """The app's answer to ``call`` (its path may carry ``?query``)."""
        if self._app is None:
            self._app = self._factory()
        path, _, query = call.path.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": call.method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode("latin-1"),
            "root_path": "",
            "headers": call.headers,
            "server": self._server,
            "client": None,
        }
        sent = False
        answered = asyncio.Event()

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                # The client stays until answered: a streamed response (a file) listens for
                # a disconnect while it sends, and would stop at an early one.
                await answered.wait()
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        status, media, headers, chunks = 500, b"text/plain", [], []

        async def send(message: dict[str, Any]) -> None:
            nonlocal status, media
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type":
                        media = value
                    elif name.lower() != b"content-length":
                        headers.append((name.lower(), value))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self._app(scope, receive, send)
        finally:
            answered.set()
        return Reply(status, b"".join(chunks), media, headers)
