"""HTTP/1.1 as clients speak it, over raw sockets to the real server: pipelining,
closing, ``Expect: 100-continue``, body limits, chunked bodies, HEAD and broken requests."""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass
from typing import Any, BinaryIO

import orjson

INFER = "/v2/models/fraud/infer"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def read_reply(stream: BinaryIO, *, head: bool = False) -> Reply:
    status_line = stream.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    headers = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = 0 if head else int(headers.get("content-length", "0"))
    return Reply(int(status_line.split()[1]), headers, stream.read(length))


def connect(server: Any) -> tuple[socket.socket, BinaryIO]:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock, sock.makefile("rb")


def closed(sock: socket.socket, stream: BinaryIO) -> bool:
    """The server closed its side: reading gives end-of-file."""
    return stream.read(1) == b""


def post(body: bytes, *, extra: str = "", version: str = "1.1", path: str = INFER) -> bytes:
    return (
        f"POST {path} HTTP/{version}\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def test_pipelined_requests_are_answered_in_order(server: Any, fraud_body: bytes) -> None:
    sock, stream = connect(server)
    with sock:
        sock.sendall(
            post(fraud_body, extra="X-Request-ID: first\r\n")
            + b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            + post(fraud_body, extra="X-Request-ID: third\r\n")
        )
        replies = [read_reply(stream) for _ in range(3)]
    assert [r.status for r in replies] == [200, 200, 200]
    assert replies[0].headers["x-request-id"] == "first"
    assert orjson.loads(replies[1].body) == {"live": True}
    assert replies[2].headers["x-request-id"] == "third"
    assert replies[0].headers["x-model-version"] == "1"


def test_keep_alive_serves_many_requests_on_one_connection(server: Any, fraud_body: bytes) -> None:
    sock, stream = connect(server)
    with sock:
        for _ in range(5):
            sock.sendall(post(fraud_body))
            reply = read_reply(stream)
            assert reply.status == 200
            assert "connection" not in reply.headers


def test_http_1_0_and_connection_close_close_after_the_answer(
    server: Any, fraud_body: bytes
) -> None:
    for request in (
        post(fraud_body, version="1.0"),
        post(fraud_body, extra="Connection: close\r\n"),
    ):
        sock, stream = connect(server)
        with sock:
            sock.sendall(request)
            reply = read_reply(stream)
            assert reply.status == 200
            assert reply.headers["connection"] == "close"
            assert closed(sock, stream)


def test_expect_100_continue_is_honoured(server: Any, fraud_body: bytes) -> None:
    sock, stream = connect(server)
    with sock:
        sock.sendall(
            post(b"", extra="Expect: 100-continue\r\n").replace(
                b"Length: 0", b"Length: %d" % len(fraud_body)
            )
        )
        assert stream.readline() == b"HTTP/1.1 100 Continue\r\n"
        assert stream.readline() == b"\r\n"
        sock.sendall(fraud_body)
        assert read_reply(stream).status == 200


def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(server: Any) -> None:
    sock, stream = connect(server)
    with sock:
        sock.sendall(
            b"POST " + INFER.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 999999999\r\n\r\n"
        )
        reply = read_reply(stream)
        assert reply.status == 413
        assert orjson.loads(reply.body)["code"] == "payload_too_large"
        assert "999999999 bytes" in orjson.loads(reply.body)["error"]
        assert reply.headers["connection"] == "close"


def chunked(body: bytes, size: int) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def test_chunked_bodies_are_read_and_limited(server: Any, fraud_body: bytes) -> None:
    head = (
        f"POST {INFER} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    sock, stream = connect(server)
    with sock:
        sock.sendall(head + chunked(fraud_body, 100))
        assert read_reply(stream).status == 200
    sock, stream = connect(server)
    with sock:
        oversized = b'{"inputs": [' + b" " * (4 * 1024 * 1024) + b"]}"
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head + chunked(oversized, 65536))  # the server may close midway
        reply = read_reply(stream)
        assert reply.status == 413
        assert "over the limit" in orjson.loads(reply.body)["error"]


def test_head_has_headers_and_no_body(server: Any) -> None:
    sock, stream = connect(server)
    with sock:
        sock.sendall(b"HEAD /v2/health/ready HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        reply = read_reply(stream, head=True)
        assert reply.status == 200
        assert int(reply.headers["content-length"]) > 0
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert orjson.loads(read_reply(stream).body) == {"live": True}


def test_a_request_that_is_not_http_gets_400_and_a_close(server: Any) -> None:
    sock, stream = connect(server)
    with sock:
        sock.sendall(b"this is not HTTP\r\n\r\n")
        reply = read_reply(stream)
        assert reply.status == 400
        assert orjson.loads(reply.body)["code"] == "malformed_http"
        assert closed(sock, stream)


def test_percent_encoded_paths_are_decoded(server: Any, fraud_body: bytes) -> None:
    sock, stream = connect(server)
    with sock:
        sock.sendall(post(fraud_body, path="/v2/models/fr%61ud/infer"))
        assert read_reply(stream).status == 200


def test_an_upgrade_request_is_answered_as_plain_http(server: Any) -> None:
    sock, stream = connect(server)
    with sock:
        sock.sendall(
            b"GET /v2/health/live HTTP/1.1\r\nHost: test\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
            b"GET /v2/health/ready HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        assert orjson.loads(read_reply(stream).body) == {"live": True}
        assert orjson.loads(read_reply(stream).body) == {"ready": True}


def test_a_request_target_that_is_not_a_url_gets_400_naming_it(server: Any) -> None:
    sock, stream = connect(server)
    with sock:
        sock.sendall(b"GET http://[::1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        reply = read_reply(stream)
        assert reply.status == 400
        assert orjson.loads(reply.body) == {
            "error": "'http://[::1' is not a valid request target",
            "code": "malformed_http",
        }
        assert closed(sock, stream)
