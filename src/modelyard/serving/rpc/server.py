"""A worker's gRPC listener: ``InferenceService`` on ``serving.host:serving.grpc_port``.

A ``grpc.aio`` server on the worker's own event loop, beside the HTTP server: the two
share the worker's models, batchers and inference log, and a request batches with
requests of the other protocol. Each worker binds the port itself with
``SO_REUSEPORT`` (grpcio cannot listen on a socket it is handed), so the kernel spreads
new connections over the workers, as it does for HTTP (``supervisor.bind_sockets``);
the supervisor checks first that nothing else holds the port. The largest message
taken is ``serving.max_body_bytes``, the REST body limit (past it, gRPC itself answers
``RESOURCE_EXHAUSTED``).

The worker (``process.worker``) starts the listener once its models are loaded and
warm, and on a stop closes it first and waits for its calls to be answered, before
HTTP drains and the models close.
"""

from __future__ import annotations

from typing import Any

import grpc
from grpc import aio

from modelyard.config.serving import ServingSettings
from modelyard.errors import ConfigurationError
from modelyard.serving.rpc.service import SERVICE, InferenceService, ServerView


def listen_address(host: str, port: int) -> str:
    """``host:port`` as gRPC writes it (an IPv6 address in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class RpcServer:
    """The gRPC listener of one worker, over its app (a ``ServerView``)."""

    def __init__(self, view: ServerView, serving: ServingSettings, *, server_version: str) -> None:
        assert serving.grpc_port, "the gRPC listener needs serving.grpc_port"
        self.address = listen_address(serving.host, serving.grpc_port)
        self._service = InferenceService(
            view,
            token=serving.token,
            timeout_s=serving.request_timeout_s,
            server_version=server_version,
        )
        self._max_message_bytes = serving.max_body_bytes
        self._server: aio.Server | None = None

    async def start(self) -> None:
        """Listen and answer calls (on the running event loop); ``ConfigurationError``
        if the port cannot be bound."""
        server = aio.server(
            options=[
                ("grpc.so_reuseport", 1),
                ("grpc.max_receive_message_length", self._max_message_bytes),
            ]
        )
        handlers: dict[str, grpc.RpcMethodHandler[Any, bytes]] = {
            name: grpc.unary_unary_rpc_method_handler(
                handler,
                request_deserializer=message.FromString,
                response_serializer=None,  # the handlers answer serialised bytes
            )
            for name, (handler, message) in self._service.handlers().items()
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        try:
            server.add_insecure_port(self.address)
        except RuntimeError as error:  # grpcio says only "Failed to bind"
            raise ConfigurationError(
                f"cannot listen for gRPC on {self.address}: {error}"
            ) from error
        await server.start()
        self._server = server

    async def stop(self, grace_s: float) -> None:
        """Stop taking calls and wait up to ``grace_s`` for those in flight to be answered."""
        if self._server is not None:
            await self._server.stop(grace_s)
            self._server = None
