"""``HttpConnection`` on a real event loop with a simulated clock and a stub app: idle
timeouts, graceful shutdown and refused uploads, without sockets or sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from modelyard.serving.http.app import Answer
from modelyard.serving.http.connection import ConnectionLimits, HttpConnection
from modelyard.serving.pipeline import Call, Reply

TIMEOUT_S = 5.0
GET = b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n"


class StubApp:
    """Answers every request 200 ``ok``; ``hold`` keeps answers waiting until released."""

    max_body_bytes = 100

    def __init__(self) -> None:
        self.hold: asyncio.Future[None] | None = None
        self.recorded = 0

    async def handle(self, method: str, path: str, headers: Any, body: bytes) -> Answer:
        if self.hold is not None:
            await self.hold
        call = Call("id-1", method, path, headers, 0.0, 0.0, 1.0)
        return call, "live", Reply(200, b"ok"), [(b"content-length", b"2")], 0.0

    def record(self, answer: Answer) -> None:
        self.recorded += 1


class FakeTransport:
    def __init__(self) -> None:
        self.written = b""
        self.closed = False
        self.reading = True

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


LIMITS = ConnectionLimits(
    max_header_count=10,
    max_header_bytes=1000,
    max_url_bytes=200,
    max_pipelined=3,
    max_buffered_bytes=250,
    drain_bytes=300,
    drain_s=2.0,
)


class Harness:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.now = 1000.0
        loop.time = lambda: self.now  # type: ignore[method-assign]
        self.app = StubApp()
        self.state = SimpleNamespace(
            connections=set(), tasks=set(), default_headers=[], total_requests=0
        )
        config = SimpleNamespace(timeout_keep_alive=TIMEOUT_S)
        self.conn = HttpConnection(
            config,  # type: ignore[arg-type]
            self.state,  # type: ignore[arg-type]
            {},
            loop,
            app=self.app,  # type: ignore[arg-type]
            limits=LIMITS,
        )
        self.transport = FakeTransport()
        self.conn.connection_made(self.transport)  # type: ignore[arg-type]

    def turn(self, advance_s: float = 0.0) -> None:
        """Advance the clock, then let the loop run what is due."""
        self.now += advance_s
        for _ in range(5):
            self.loop.run_until_complete(asyncio.sleep(0))


@pytest.fixture
def harness() -> Iterator[Harness]:
    loop = asyncio.new_event_loop()
    try:
        yield Harness(loop)
    finally:
        loop.close()


def test_an_idle_connection_closes_after_the_keep_alive_timeout(harness: Harness) -> None:
    harness.conn.data_received(GET)
    harness.turn()
    assert harness.transport.written.endswith(b"\r\n\r\nok")
    harness.turn(TIMEOUT_S - 1)
    assert not harness.transport.closed
    harness.turn(1.5)
    assert harness.transport.closed


def test_activity_pushes_the_idle_close_back(harness: Harness) -> None:
    harness.turn(3.0)
    harness.conn.data_received(GET)  # at 3 s: the idle clock starts again
    harness.turn()
    harness.turn(2.5)  # 5.5 s after connecting, 2.5 s after the request
    assert not harness.transport.closed
    harness.turn(3.0)
    assert harness.transport.closed


def test_a_request_being_read_or_answered_is_not_closed_as_idle(harness: Harness) -> None:
    harness.conn.data_received(
        b"POST /v2/models/m/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n12345"
    )
    harness.turn(TIMEOUT_S * 3)
    assert not harness.transport.closed  # half a body: the client is still sending
    harness.app.hold = harness.loop.create_future()
    harness.conn.data_received(b"67890")
    harness.turn(TIMEOUT_S * 3)
    assert not harness.transport.closed  # being answered
    harness.app.hold.set_result(None)
    harness.turn()
    assert harness.transport.written.endswith(b"ok")
    harness.turn(TIMEOUT_S + 0.1)
    assert harness.transport.closed


def test_graceful_shutdown_waits_for_the_answer_in_progress(harness: Harness) -> None:
    harness.app.hold = harness.loop.create_future()
    harness.conn.data_received(GET)
    harness.turn()
    harness.conn.shutdown()
    assert not harness.transport.closed
    harness.app.hold.set_result(None)
    harness.turn()
    assert b"connection: close" in harness.transport.written
    assert harness.transport.closed
    assert harness.app.recorded == 1


def test_a_refused_upload_is_answered_at_once_and_closed_once_drained(harness: Harness) -> None:
    harness.conn.data_received(
        b"POST /v2/models/m/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 150\r\n\r\n" + b"x" * 50
    )
    assert harness.transport.written.startswith(b"HTTP/1.1 413 ")
    assert not harness.transport.closed  # still reading, so the 413 is not reset away
    harness.conn.data_received(b"x" * 100)
    assert harness.transport.closed
    assert harness.app.recorded == 0


def test_a_refused_upload_is_drained_only_so_far_and_so_long(harness: Harness) -> None:
    head = b"POST /v2/models/m/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n"
    harness.conn.data_received(head + b"x" * 250)
    assert harness.transport.written.startswith(b"HTTP/1.1 413 ")
    harness.conn.data_received(b"x" * 40)
    assert not harness.transport.closed
    harness.conn.data_received(b"x" * 40)  # past drain_bytes (300)
    assert harness.transport.closed

    other = Harness(harness.loop)
    other.conn.data_received(head)
    for _ in range(3):  # a trickle, never idle for the keep-alive timeout
        other.turn(0.9)
        other.conn.data_received(b"x")
    assert other.transport.closed  # drain_s (2 s) is up


def test_too_many_headers_are_a_431_and_the_rest_is_discarded(harness: Harness) -> None:
    headers = b"".join(b"X-%d: y\r\n" % i for i in range(50))
    harness.conn.data_received(b"GET /v2/health/live HTTP/1.1\r\n" + headers)
    assert harness.transport.written.startswith(b"HTTP/1.1 431 ")
    assert b"more than 10 headers" in harness.transport.written
    assert b"connection: close" in harness.transport.written
    assert not harness.transport.closed  # the client may still be sending: read on
    harness.conn.data_received(b"X-more: y\r\n" * 10)
    assert harness.transport.written.count(b"HTTP/1.1") == 1
    harness.turn(LIMITS.drain_s + 0.1)
    assert harness.transport.closed
    assert harness.app.recorded == 0


def test_headers_over_the_byte_limit_are_a_431_even_as_one_header(harness: Harness) -> None:
    harness.conn.data_received(b"GET / HTTP/1.1\r\nX-big: " + b"y" * 700)
    assert harness.transport.written == b""
    harness.conn.data_received(b"y" * 1300)  # one header, unfinished: the parser holds it
    assert harness.transport.written.startswith(b"HTTP/1.1 431 ")
    assert b"over 1000 bytes" in harness.transport.written


def test_a_long_url_is_a_414(harness: Harness) -> None:
    harness.conn.data_received(b"GET /" + b"a" * 300 + b" HTTP/1.1\r\n\r\n")
    assert harness.transport.written.startswith(b"HTTP/1.1 414 ")
    assert b"longer than 200 bytes" in harness.transport.written
    harness.conn.data_received(b"x" * 400)  # past drain_bytes
    assert harness.transport.closed


def test_a_head_within_the_limits_split_over_reads_is_served(harness: Harness) -> None:
    body = b"x" * 90
    post = b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 90\r\n\r\n" + body
    harness.conn.data_received(post + b"GET /" + b"a" * 150)
    harness.conn.data_received(b" HTTP/1.1\r\n" + b"X-a: " + b"b" * 800)
    harness.conn.data_received(b"\r\n\r\n")
    harness.turn()
    assert harness.transport.written.count(b"HTTP/1.1 200 ") == 2


def post(size: int) -> bytes:
    return b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size


def test_pipelined_requests_past_the_limit_pause_reading_until_answered(
    harness: Harness,
) -> None:
    harness.app.hold = harness.loop.create_future()
    harness.conn.data_received(GET)  # being answered, held
    harness.turn()
    for _ in range(2):
        harness.conn.data_received(GET)
    assert harness.transport.reading
    harness.conn.data_received(GET)  # the third waiting: max_pipelined
    assert not harness.transport.reading
    harness.app.hold.set_result(None)
    harness.turn()
    assert harness.transport.written.count(b"HTTP/1.1 200 ") == 4
    assert harness.transport.reading


def test_buffered_bodies_past_the_limit_pause_reading_until_answered(harness: Harness) -> None:
    harness.app.hold = harness.loop.create_future()
    harness.conn.data_received(GET)
    harness.turn()
    harness.conn.data_received(post(90) + post(90))
    assert harness.transport.reading  # 180 bytes held
    harness.conn.data_received(post(90))  # 270 > max_buffered_bytes (250)
    assert not harness.transport.reading
    harness.app.hold.set_result(None)
    harness.turn()
    assert harness.transport.written.count(b"HTTP/1.1 200 ") == 4
    assert harness.transport.reading
    assert harness.conn._buffered == 0


def test_a_full_send_buffer_and_a_backlog_both_hold_reading(harness: Harness) -> None:
    harness.app.hold = harness.loop.create_future()
    harness.conn.data_received(GET + GET + GET + GET)
    harness.turn()
    assert not harness.transport.reading
    harness.conn.pause_writing()
    harness.app.hold.set_result(None)
    harness.turn()
    assert not harness.transport.reading  # the backlog is gone, the send buffer still full
    harness.conn.resume_writing()
    assert harness.transport.reading


def test_a_refused_upload_that_stops_sending_is_closed_when_idle(harness: Harness) -> None:
    harness.conn.data_received(
        b"POST /v2/models/m/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 150\r\n\r\n"
    )
    assert harness.transport.written.startswith(b"HTTP/1.1 413 ")
    harness.turn(TIMEOUT_S + 0.1)
    assert harness.transport.closed
