"""Ceiling: grpcio's asyncio server answering every ``ModelInfer`` with the same bytes.

What a gRPC call costs before any work is done on it: the kernel's loopback TCP,
HTTP/2 and grpcio's C core and asyncio layer, on uvloop as modelyard's workers run it,
in ``WORKERS`` processes sharing the port (``SO_REUSEPORT``), no message parsed. The
gRPC counterpart of ``constant_httptools.py``.

Run: ``python constant_grpc.py PORT WORKERS`` with ``BENCH_ANSWER`` the serialised
``ModelInferResponse`` in hex.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from typing import Any

import grpc
import uvloop
from grpc import aio

ANSWER = bytes.fromhex(os.environ["BENCH_ANSWER"])


async def infer(request: bytes, context: Any) -> bytes:
    return ANSWER


async def serve(port: int) -> None:
    server = aio.server(options=[("grpc.so_reuseport", 1)])
    handler = grpc.unary_unary_rpc_method_handler(infer)  # bytes in, bytes out
    service = grpc.method_handlers_generic_handler(
        "inference.GRPCInferenceService", {"ModelInfer": handler}
    )
    server.add_generic_rpc_handlers((service,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def worker(port: int) -> None:
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    uvloop.run(serve(port))


if __name__ == "__main__":
    port, count = int(sys.argv[1]), int(sys.argv[2])
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=worker, args=(port,)) for _ in range(count)]
    for process in processes:
        process.start()

    def stop(*_: object) -> None:
        for process in processes:
            process.terminate()

    signal.signal(signal.SIGTERM, stop)
    for process in processes:
        process.join()
