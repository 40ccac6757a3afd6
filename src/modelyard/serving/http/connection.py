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
as soon as a body passes it; the connection then closes once the body has been
read and discarded, within ``ConnectionLimits.drain_bytes`` and ``drain_s``, so
that the client can read the 413), HEAD answered without a body, and a 400 for a
request that does not parse. Upgrade requests (h2c, WebSocket) are answered as
plain HTTP/1.1.

What one connection may make a worker hold is bounded (``ConnectionLimits``):
too many or too large headers are a 431, a long URL a 414 (both close the
connection, after discarding what the client still sends, within the same
bounds); and reading stops (``transport.pause_reading``, so TCP pushes back on
the client) while the socket's send buffer is full, or while more pipelined
requests, or more of their body bytes, wait behind the one being answered than
the limits allow. Those last two bounds can be passed by what one read (256 KiB)
holds: the parser takes a read whole.
"""

from __future__ import annotations

import asyncio
import http
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote

import httptools
from uvicorn.config import Config
from uvicorn.server import ServerState

from modelyard.config.serving import ServingSettings
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


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What one connection may make a worker hold (``ServingSettings`` explains the
    defaults)."""

    max_header_count: int = 100
    max_header_bytes: int = 64 * 1024
    max_url_bytes: int = 8 * 1024
    max_pipelined: int = 16
    max_buffered_bytes: int = 8 * 1024 * 1024
    drain_bytes: int = 64 * 1024 * 1024  # read and discarded after a refusal, at most
    drain_s: float = 5.0

    @classmethod
    def of(cls, serving: ServingSettings) -> ConnectionLimits:
        return cls(
            serving.max_header_count,
            serving.max_header_bytes,
            serving.max_url_bytes,
            serving.max_pipelined_requests,
            serving.max_buffered_bytes,
            serving.refused_drain_bytes,
            serving.refused_drain_s,
        )


def _too_many_headers(limit: int) -> str:
    return f"the request has more than {limit} headers; send large inputs in the body"


def _too_large_headers(limit: int) -> str:
    return f"the request's headers are over {limit} bytes; send large inputs in the body"


class _HeadRefused(Exception):
    """Raised in a parser callback to stop parsing a request whose head is refused."""


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
        limits: ConnectionLimits | None = None,
    ) -> None:
        self._app = app
        self._limits = limits = limits or ConnectionLimits()
        # read on every header: plain attributes, not a lookup through ``_limits``
        self._max_header_count = limits.max_header_count
        self._max_header_bytes = limits.max_header_bytes
        self._loop = _loop or asyncio.get_event_loop()
        self._state = server_state
        self._idle_timeout = config.timeout_keep_alive
        self._max_body = app.max_body_bytes
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: Headers = []
        self._in_head = False  # between a request's first byte and its headers' end
        self._head_bytes = 0  # bytes read while in a head (the parser buffers a header whole)
        self._head_reads = 0  # the size of the reads that held the current head: its bound
        self._reading = 0  # the size of the read being parsed
        self._buffered = 0  # body bytes held by requests read but not yet started
        self._write_paused = False  # the socket's send buffer is full
        self._read_paused = False
        self._lingering = False  # refused: input is read and discarded until the close
        self._lingered = 0
        self._linger_timer: asyncio.TimerHandle | None = None
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
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        self._waiting.clear()
        self._closing = True

    def data_received(self, data: bytes) -> None:
        self._last_active = self._loop.time()
        if self._lingering:
            self._lingered += len(data)
            if self._lingered > self._limits.drain_bytes:
                self._close()
            return
        self._reading = len(data)
        if self._in_head:
            self._head_reads += len(data)
        try:
            self._parser.feed_data(data)
            if self._in_head:  # a head still incomplete after this read: count all of it
                self._head_bytes += len(data)
                if self._head_bytes > self._limits.max_header_bytes + self._limits.max_url_bytes:
                    self._refuse_head(431, _too_large_headers(self._limits.max_header_bytes))
        except _HeadRefused:
            pass
        except httptools.HttpParserCallbackError as error:
            if not isinstance(error.__context__, _HeadRefused):
                raise
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
        self._write_paused = True  # the client is not reading: stop taking requests
        self._throttle()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._throttle()

    def _throttle(self) -> None:
        """Pause reading while the client is not reading, or while what waits behind the
        request being answered passes the limits; resume when neither holds."""
        limits = self._limits
        backlog = self._busy and (
            len(self._waiting) >= limits.max_pipelined or self._buffered > limits.max_buffered_bytes
        )
        pause = self._write_paused or backlog
        transport = self._transport
        if pause == self._read_paused or transport is None or self._closing:
            return
        self._read_paused = pause
        if pause:
            transport.pause_reading()
        else:
            transport.resume_reading()

    def shutdown(self) -> None:
        """uvicorn's graceful stop: close now if idle, else after the request in progress
        (being read or being answered) has its answer."""
        self._closing = True
        if self._lingering or (not self._busy and self._parsing is None):
            self._close()

    # -- httptools callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._in_head = True
        # Less this read, which the caller counts after parsing it: what it holds of
        # this head is counted by the callbacks (or, unparsed, by the next read's count).
        self._head_bytes = -self._reading
        self._head_reads = self._reading

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._limits.max_url_bytes:
            limit = self._limits.max_url_bytes
            message = f"the URL is longer than {limit} bytes; send large inputs in the body"
            self._refuse_head(414, message)

    def on_header(self, name: bytes, value: bytes) -> None:
        # Their bytes are counted once the head is complete, and only when the reads that
        # held it could hold too many: the count and the reads bound memory meanwhile.
        headers = self._headers
        headers.append((name.lower(), value))
        if len(headers) > self._max_header_count:
            self._refuse_head(431, _too_many_headers(self._max_header_count))

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_reads > self._max_header_bytes:
            size = sum(len(name) + len(value) for name, value in self._headers)
            if size > self._max_header_bytes:
                self._refuse_head(431, _too_large_headers(self._max_header_bytes))
        parser = self._parser
        query = None
        try:
            url = httptools.parse_url(self._url)
            path = url.path.decode("latin-1")
            if url.query and path.startswith("/ui"):  # only the dashboard reads queries
                query = url.query.decode("latin-1")
        except httptools.HttpParserInvalidURLError:
            path = None
        target = unquote(path) if path and "%" in path else path or ""
        request = _Request(
            parser.get_method().decode("ascii"),
            target if query is None else f"{target}?{query}",
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
            if request.discarded > self._limits.drain_bytes:
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
        self._buffered += len(body)
        if self._busy:
            self._throttle()

    def on_message_complete(self) -> None:
        request, self._parsing = self._parsing, None
        if request is None:
            return
        if request.answered:  # refused while its body came in (``_refuse``); now drained
            self._close()
            return
        if self._busy:
            self._waiting.append(request)
            self._throttle()
            return
        self._start(request)

    # -- answering -----------------------------------------------------------------------------

    def _start(self, request: _Request) -> None:
        self._busy = True
        self._buffered -= len(request.body)
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
        self._throttle()

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
        self._buffered -= len(request.body)
        request.body = b""
        if not self._busy:
            self._busy = request.answered = True
            self._write_error(status, code, message)
            self._linger_timer = self._loop.call_later(self._limits.drain_s, self._close)

    def _refuse_head(self, status: int, message: str) -> None:
        """Refuse a request whose head is too large, and stop parsing (raises)."""
        self._in_head = False
        code = "uri_too_long" if status == 414 else "headers_too_large"
        self._waiting.clear()
        self._parsing = None
        self._lingering = True  # the rest of the stream is not parsed, only discarded
        if self._busy:  # the answer in progress goes first; then the connection closes
            self._closing = True
        else:
            self._busy = True
            self._write_error(status, code, message)
            self._linger_timer = self._loop.call_later(self._limits.drain_s, self._close)
        raise _HeadRefused

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
