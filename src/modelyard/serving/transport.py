"""One ``send()`` per response instead of two: uvicorn's httptools protocol, write-coalesced.

uvicorn writes a response's status line and headers when the app sends
``http.response.start`` and the body when it sends ``http.response.body``: two
``transport.write`` calls, so two ``send()`` system calls and, with
``TCP_NODELAY``, two packets. For a ~250-byte inference answer those calls were
about a third of a worker's CPU time (py-spy, wrk at 32 connections).

``CoalescingTransport`` holds the first write and sends it together with the
next one; if no next write comes in the same event-loop turn (a HEAD request,
an empty response), a ``call_soon`` sends it alone. Closing sends whatever is
held first. Everything else passes through to uvicorn's own protocol and the
real transport unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """A transport wrapper that joins the writes of one response into one send."""

    __slots__ = ("_transport", "_loop", "_held", "_scheduled")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._scheduled = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is None:
            self._held = bytes(data)
            if not self._scheduled:
                self._scheduled = True
                self._loop.call_soon(self._flush_later)
            return
        self._held = None
        self._transport.write(held + bytes(data))

    def _flush_later(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:  # asked once per response: spared the __getattr__ detour
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing through a ``CoalescingTransport``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        wrapped: Any = CoalescingTransport(transport, self.loop)
        super().connection_made(wrapped)
