"""What one connection may make a worker hold, over raw sockets to the real server: header
and URL limits (431, 414), pipelined bodies read no faster than they are answered, and a
refused upload answered so that a client still sending reads the 413."""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
from pathlib import Path
from typing import Any

from .conftest import workers

INFER = "/v2/models/fraud/infer"


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def connect(server: Any) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def send_in_background(sock: socket.socket, data: bytes) -> threading.Thread:
    """Send ``data`` while the caller reads; the server may close before it is all sent."""

    def send() -> None:
        with contextlib.suppress(OSError):
            sock.sendall(data)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def read_reply(stream: Any) -> tuple[int, dict[str, str], bytes]:
    status_line = stream.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    headers = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = stream.read(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


def test_200_000_headers_are_a_431_that_the_client_reads(server: Any) -> None:
    headers = b"".join(b"X-Header-%06d: %s\r\n" % (i, b"v" * 80) for i in range(200_000))
    with connect(server) as sock:
        sender = send_in_background(sock, b"GET /v2/health/live HTTP/1.1\r\n" + headers + b"\r\n")
        status, reply_headers, body = read_reply(sock.makefile("rb"))
        sender.join(30)
    assert status == 431
    assert reply_headers["connection"] == "close"
    assert b"more than 100 headers" in body


def test_a_20_kb_url_is_a_414(server: Any) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /v2/models/" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, _, body = read_reply(sock.makefile("rb"))
    assert status == 414
    assert b"longer than 8192 bytes" in body


def test_http_client_posting_10_mb_reads_the_413(server: Any) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request(
            "POST", INFER, body=b" " * 10_000_000, headers={"content-type": "application/json"}
        )
        response = connection.getresponse()
        assert response.status == 413
        assert b"the limit is" in response.read()
    finally:
        connection.close()


def test_pipelined_megabyte_bodies_are_answered_in_order_in_bounded_memory(
    server: Any, fraud_body: bytes
) -> None:
    count, size = 200, 1 << 20
    padded = fraud_body + b" " * (size - len(fraud_body))  # valid JSON, 1 MiB
    requests = b"".join(
        b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"X-Request-ID: piped-%d\r\nContent-Length: %d\r\n\r\n" % (INFER.encode(), i, size) + padded
        for i in range(count)
    )
    (pid,) = workers(server.process.pid)  # the one worker, under its supervisor
    before = peak = rss_bytes(pid)
    with connect(server) as sock:
        sender = send_in_background(sock, requests)
        stream = sock.makefile("rb")
        ids = []
        for _ in range(count):
            status, headers, _ = read_reply(stream)
            assert status == 200
            ids.append(headers["x-request-id"])
            peak = max(peak, rss_bytes(pid))
        sender.join(30)
    assert ids == [f"piped-{i}" for i in range(count)]
    assert peak - before < 50 * 1024 * 1024, (before, peak)
