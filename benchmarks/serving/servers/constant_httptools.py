"""Ceiling: httptools callbacks on uvloop answering every request with the same bytes.

The same answer as ``constant_asgi`` with no ASGI cycle at all: the parser's
callbacks collect nothing and the answer is written when a request ends. What is
left is the kernel's loopback TCP, the event loop and the parser, the floor under
any Python server on this machine. modelyard's ``serving.connection`` is built
the same way (plus keep-alive, limits, pipelining and the app).

Run: ``python constant_httptools.py PORT WORKERS`` with ``BENCH_ANSWER='{"outputs": ...}'``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys

import httptools
import uvloop

ANSWER = os.environ["BENCH_ANSWER"].encode()
HEALTH = b'{"ready": true}'


def response(body: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    return head % len(body) + body


class Constant(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url = b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_message_complete(self) -> None:
        self.transport.write(HEALTH_RESPONSE if self.url == b"/health" else ANSWER_RESPONSE)
        if not self.parser.should_keep_alive():
            self.transport.close()


ANSWER_RESPONSE = response(ANSWER)
HEALTH_RESPONSE = response(HEALTH)


async def serve(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    server = await loop.create_server(Constant, sock=sock, backlog=2048)
    await stop
    server.close()


def main() -> None:
    port, workers = int(sys.argv[1]), int(sys.argv[2])
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            uvloop.run(serve(sock))
            os._exit(0)
        children.append(pid)
    signal.signal(signal.SIGTERM, lambda *_: [os.kill(pid, signal.SIGTERM) for pid in children])
    for pid in children:
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
