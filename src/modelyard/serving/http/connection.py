"""One HTTP/1.1 connection: httptools parses, ``ServingApp.handle`` answers, one write.

Hand-written in place of uvicorn's own httptools protocol because that
protocol's per-request ASGI cycle (a scope dict, an ``asyncio.Event``,
``receive``/``send`` coroutines and message dicts, a regex over every response
header) was the largest single cost of a request: a constant-answer ASGI app on
it took 79 us of CPU per request on this machine, httptools callbacks answering
the same constant 16 us (benchmarks/serving/RESULTS.md). uvicorn still runs
everything around connections (sockets, signals, lifespan, graceful shutdown);
this class is handed to it as the ``http`` protocol and replaces only the
request cycle: the parser's callbacks gather method, path, headers and body, one
task runs the app, and the status line, headers and body leave in one ``write``.

HTTP/1.1 as clients use it: keep-alive with uvicorn's idle timeout, HTTP/1.0 and
``Connection: close`` closing after the answer, pipelined requests answered in
order, ``Expect: 100-continue``, the body limit enforced while reading (a 413
as soon as a body passes it; the connection then closes, after draining at most
as much again so that the client can read the 413), HEAD answered without a
body, reading paused while the socket's send buffer is full, and a 400 for a
request that does not parse. Upgrade requests (h2c, WebSocket) are answered as
plain HTTP/1.1.
"""

from __future__ import annotations

import asyncio
import http
from collections import deque
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote

import httptools
from uvicorn.config import Config
from uvicorn.server import ServerState

from modelyard.serving.wire.status import error_body

if TYPE_CHECKING:
    from modelyard.serving.http.app import Answer, ServingApp

Headers = list[tuple[bytes, bytes]]


def _status_line(status: int) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/1.1 {status} {phrase}\r\n".encode()


STATUS_LINES = {status: _status_line(status) for status in range(100, 600)}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CLOSE = b"connection: close\r\n"


class _Request:
    """A parsed request waiting for (or being given) its answer."""

    __slots__ = (
        "method",
        "path",
        "headers",
        "body",
        "keep_alive",
        "refusal",
        "answered",
        "discarded",
    )

    def __init__(self, method: str, path: str, headers: Headers, keep_alive: bool) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.body: bytes | bytearray = b""
        self.keep_alive = keep_alive
        self.refusal: tuple[int, str, str] | None = None  # status, code, message
        self.answered = False  # its refusal is written already
        self.discarded = 0  # body bytes read past a refusal


class HttpConnection(asyncio.Protocol):
    """The server side of one client connection (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        app: ServingApp,
    ) -> None:
        self._app = app
        self._loop = _loop or asyncio.get_event_loop()
        self._state = server_state
        self._idle_timeout = config.timeout_keep_alive
        self._max_body = app.max_body_bytes
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: Headers = []
        self._parsing: _Request | None = None
        self._waiting: deque[_Request] = deque()  # parsed, not yet answered (pipelining)
        self._busy = False  # a request's answer is being made
        self._closing = False  # close once the current answer is written
        self._idle_timer: asyncio.TimerHandle | None = None
        self._last_active = 0.0  # loop time of the last data in or answer out
        self._defaults: tuple[Headers | None, bytes] = (None, b"")  # uvicorn's, encoded

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._state.connections.add(self)  # type: ignore[arg-type]
        self._last_active = self._loop.time()
        self._idle_timer = self._loop.call_later(self._idle_timeout, self._check_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self._state.connections.discard(self)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._waiting.clear()
        self._closing = True

    def data_received(self, data: bytes) -> None:
        self._last_active = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            # An upgrade this server does not speak (h2c, WebSocket): the request has been
            # taken as plain HTTP/1.1, which the client keeps speaking when no 101 comes.
            self._parser = httptools.HttpRequestParser(self)
            rest = data[int(upgrade.args[0]) :]
            if rest:
                self.data_received(rest)
        except httptools.HttpParserError as error:
            self._refuse_and_close(400, "malformed_http", f"the request is not valid HTTP: {error}")

    def pause_writing(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()  # the client is not reading: stop taking requests

    def resume_writing(self) -> None:
        if self._transport is not None and not self._closing:
            self._transport.resume_reading()

    def shutdown(self) -> None:
        """uvicorn's graceful stop: close now if idle, else after the request in progress
        (being read or being answered) has its answer."""
        self._closing = True
        if not self._busy and self._parsing is None and self._transport is not None:
            self._transport.close()

    # -- httptools callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        parser = self._parser
        try:
            path = httptools.parse_url(self._url).path.decode("latin-1")
        except httptools.HttpParserInvalidURLError:
            path = None
        request = _Request(
            parser.get_method().decode("ascii"),
            unquote(path) if path and "%" in path else path or "",
            self._headers,
            parser.should_keep_alive(),
        )
        self._parsing = request
        if path is None:
            message = f"{self._url.decode('latin-1')[:80]!r} is not a valid request target"
            self._refuse(request, 400, "malformed_http", message)
            return
        declared, expects_continue = -1, False
        for name, value in self._headers:
            if name == b"content-length" and value.isdigit():
                declared = int(value)
            elif name == b"expect" and value.lower() == b"100-continue":
                expects_continue = True
        if declared > self._max_body:
            message = f"the body has {declared} bytes; the limit is {self._max_body}"
            self._refuse(request, 413, "payload_too_large", message)
            if expects_continue and request.answered:  # the body will not come
                self._close()
        elif expects_continue and self._transport is not None:
            self._transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        request = self._parsing
        if request is None:
            return
        if request.refusal is not None:
            # Drained rather than left unread, because closing a socket with unread input
            # resets it, and the reset can destroy the 413 before the client reads it.
            # But only so far: then the connection closes anyway.
            request.discarded += len(body)
            if request.discarded > self._max_body:
                self._close()
            return
        if len(request.body) + len(body) > self._max_body:
            message = f"the body is over the limit of {self._max_body} bytes"
            self._refuse(request, 413, "payload_too_large", message)
            return
        if not request.body:
            request.body = body
        else:
            if isinstance(request.body, bytes):
                request.body = bytearray(request.body)
            request.body += body

    def on_message_complete(self) -> None:
        request, self._parsing = self._parsing, None
        if request is None:
            return
        if request.answered:  # refused while its body came in (``_refuse``); now drained
            self._close()
            return
        if self._busy:
            self._waiting.append(request)
            return
        self._start(request)

    # -- answering -----------------------------------------------------------------------------

    def _start(self, request: _Request) -> None:
        self._busy = True
        if request.refusal is not None:  # refused while waiting its turn
            self._write_error(*request.refusal)
            self._close()
            return
        body = request.body if isinstance(request.body, bytes) else bytes(request.body)
        task = self._loop.create_task(
            self._app.handle(request.method, request.path, request.headers, body)
        )
        tasks = self._state.tasks
        tasks.add(task)  # type: ignore[arg-type]  # so uvicorn's graceful stop waits for it
        task.add_done_callback(lambda done: self._answered(done, request))

    def _answered(self, task: asyncio.Task[Answer | None], request: _Request) -> None:
        self._state.tasks.discard(task)
        transport = self._transport
        answer = None if task.cancelled() else task.result()
        if answer is None:  # cancelled: uvicorn's graceful stop ran out of time
            self._busy = False
            self._close()
            return
        if transport is None or transport.is_closing():  # the client left; the answer counts
            self._busy = False
            self._app.record(answer)
            return
        close = self._closing or not request.keep_alive
        reply = answer[2]
        parts = [STATUS_LINES[reply.status]]
        for name, value in answer[3]:
            parts += (name, b": ", value, b"\r\n")
        parts.append(self._default_headers())
        if close:
            parts.append(_CLOSE)
        parts.append(b"\r\n")
        if request.method != "HEAD":
            parts.append(reply.payload)
        transport.write(b"".join(parts))
        self._app.record(answer)
        self._state.total_requests += 1
        self._next(close)

    def _next(self, close: bool) -> None:
        self._busy = False
        if self._transport is None:
            return
        if close:
            self._close()
        elif self._waiting:
            self._start(self._waiting.popleft())
        else:
            self._last_active = self._loop.time()

    def _close(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    def _write_error(self, status: int, code: str, message: str) -> None:
        """An error answer that closes the connection after it."""
        payload = error_body(message, code)
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(
                b"".join(
                    (
                        STATUS_LINES[status],
                        b"content-type: application/json\r\n",
                        b"content-length: %d\r\n" % len(payload),
                        self._default_headers(),
                        _CLOSE,
                        b"\r\n",
                        payload,
                    )
                )
            )

    def _refuse(self, request: _Request, status: int, code: str, message: str) -> None:
        """Refuse the request being read. If it is its turn, it is answered now and the
        connection closes when its body has been drained; else when its turn comes."""
        request.refusal = (status, code, message)
        request.body = b""
        if not self._busy:
            self._busy = request.answered = True
            self._write_error(status, code, message)

    def _refuse_and_close(self, status: int, code: str, message: str) -> None:
        """Answer at once and close: the rest of the stream cannot be parsed."""
        self._waiting.clear()
        self._parsing = None
        if self._busy:  # the answer in progress goes first; then the connection closes
            self._closing = True
            return
        self._busy = True
        self._write_error(status, code, message)
        self._close()

    def _default_headers(self) -> bytes:
        """uvicorn's ``date`` (and configured) headers, encoded again when uvicorn replaces
        its list (once a second)."""
        current = self._state.default_headers
        if self._defaults[0] is not current:
            encoded = b"".join(name + b": " + value + b"\r\n" for name, value in current)
            self._defaults = (current, encoded)
        return self._defaults[1]

    # -- idle connections ------------------------------------------------------------------------

    def _check_idle(self) -> None:
        """Close a connection idle for the keep-alive timeout, or a refused upload's that
        stopped sending; else look again when that could first be so.

        One timer per connection that re-arms itself, rather than one set and cancelled
        per request: activity only stores a time."""
        idle_for = self._loop.time() - self._last_active
        draining = self._parsing is not None and self._parsing.answered
        waiting = draining or (not self._busy and self._parsing is None)
        if waiting and idle_for >= self._idle_timeout:
            self._idle_timer = None
            self._close()
            return
        delay = self._idle_timeout - idle_for if waiting else self._idle_timeout
        self._idle_timer = self._loop.call_later(max(delay, 0.01), self._check_idle)
