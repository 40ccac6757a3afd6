"""Ceiling: a raw ASGI app on uvicorn that answers every request with the same bytes.

No framework, no parsing, no model: it reads the body and sends the answer the
benchmark gives it (``BENCH_ANSWER``, the model's real answer to the benchmark's
one request, so the answer check passes). What is left is uvicorn's own request
cycle, the floor under any server built on it.

Run: ``uvicorn constant_asgi:app --workers 2`` with ``BENCH_ANSWER='{"outputs": ...}'``.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]

ANSWER = os.environ["BENCH_ANSWER"].encode()
HEALTH = b'{"ready": true}'


async def app(
    scope: Message,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    body = HEALTH if scope["path"] == "/health" else ANSWER
    length = b"%d" % len(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", length)]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
