"""The one table that maps error codes to statuses (HTTP, and gRPC), and the error body.

Domain code raises ``ModelyardError`` subclasses (``modelyard.errors``) that carry
a stable ``code``; only this module speaks HTTP and gRPC statuses. A code missing from
the table inherits the statuses of the nearest ancestor class that has them, so a new
subclass elsewhere never turns into a 500 by accident::

    class (code)                                           HTTP  gRPC
    ValidationError (invalid_input)                        422   INVALID_ARGUMENT
    ├── MalformedRequestError (malformed_request)          400   INVALID_ARGUMENT
    │   └── HostNotAllowedError (host_not_allowed)         400   INVALID_ARGUMENT
    ├── UnsupportedMediaTypeError (unsupported_media_type) 415   INVALID_ARGUMENT
    └── PayloadTooLargeError (payload_too_large)           413   RESOURCE_EXHAUSTED
    NotFoundError (not_found)                              404   NOT_FOUND
    └── RouteNotFoundError (route_not_found)               404   NOT_FOUND
    ConflictError (conflict)                               409   ABORTED
    ServingError (serving_error)                           500   INTERNAL
    ├── UnauthorizedError (unauthorized)                   401   UNAUTHENTICATED
    ├── MethodNotAllowedError (method_not_allowed)         405   UNIMPLEMENTED
    ├── ModelNotReadyError (model_not_ready)               503   UNAVAILABLE
    ├── OverloadedError (overloaded)                       503   UNAVAILABLE
    ├── DeadlineExceededError (deadline_exceeded)          504   DEADLINE_EXCEEDED
    └── ModelFailedError (model_failed)                    500   INTERNAL

gRPC statuses are named as ``grpc.StatusCode`` names them (the ``google.rpc.Code``
names), so this module needs no gRPC import. The choices that are not one-to-one:
a request declaring more values than the server takes is ``RESOURCE_EXHAUSTED``, what
gRPC itself answers for a message over its size limit; an overloaded or not yet ready
model is ``UNAVAILABLE``, the status gRPC clients treat as safe to retry.
"""

from __future__ import annotations

from typing import NamedTuple

import orjson

from modelyard.errors import MethodNotAllowedError, ModelyardError, UnauthorizedError


class Status(NamedTuple):
    """How one error code is answered over each transport."""

    http: int
    grpc: str  # a ``grpc.StatusCode`` name


STATUSES: dict[str, Status] = {
    "invalid_input": Status(422, "INVALID_ARGUMENT"),
    "malformed_request": Status(400, "INVALID_ARGUMENT"),
    # 400 rather than 421 Misdirected Request: a client may retry a 421 on a new
    # connection (RFC 9110 15.5.20), which would only be refused again; Django and
    # Starlette's TrustedHostMiddleware answer a bad Host with 400 too.
    "host_not_allowed": Status(400, "INVALID_ARGUMENT"),
    "unsupported_media_type": Status(415, "INVALID_ARGUMENT"),
    "payload_too_large": Status(413, "RESOURCE_EXHAUSTED"),
    "not_found": Status(404, "NOT_FOUND"),
    "conflict": Status(409, "ABORTED"),
    "unauthorized": Status(401, "UNAUTHENTICATED"),
    "method_not_allowed": Status(405, "UNIMPLEMENTED"),
    "model_not_ready": Status(503, "UNAVAILABLE"),
    "overloaded": Status(503, "UNAVAILABLE"),
    "deadline_exceeded": Status(504, "DEADLINE_EXCEEDED"),
    "serving_error": Status(500, "INTERNAL"),
    "modelyard_error": Status(500, "INTERNAL"),
}
_INTERNAL = Status(500, "INTERNAL")

# Seconds a client should wait before retrying a 503 (shed or not ready yet).
RETRY_AFTER_S = 1


def status_of(error: ModelyardError) -> Status:
    """The statuses for ``error``: its code's, else its nearest ancestor's, else 500
    (``INTERNAL``)."""
    for cls in type(error).__mro__:
        status = STATUSES.get(getattr(cls, "code", ""))
        if status is not None:
            return status
    return _INTERNAL


def http_status(error: ModelyardError) -> int:
    """The HTTP status for ``error`` (``status_of``)."""
    return status_of(error).http


def grpc_status(error: ModelyardError) -> str:
    """The gRPC status for ``error`` (``status_of``), as a ``grpc.StatusCode`` name."""
    return status_of(error).grpc


def error_body(message: str, code: str, request_id: str | None = None) -> bytes:
    """The Open Inference Protocol error object (``error``), plus our stable ``code`` and
    the request id to quote. Never an exception's text, a path or a traceback: those go
    to the server's log, under the same request id."""
    if request_id is None:
        return orjson.dumps({"error": message, "code": code})
    return orjson.dumps({"error": message, "code": code, "request_id": request_id})


def error_headers(error: ModelyardError, status: int) -> list[tuple[bytes, bytes]]:
    """Extra headers an error response needs: ``Retry-After`` on 503, ``Allow`` on 405."""
    if status == 503:
        return [(b"retry-after", str(RETRY_AFTER_S).encode())]
    if isinstance(error, MethodNotAllowedError):
        return [(b"allow", ", ".join(error.allowed).encode())]
    if isinstance(error, UnauthorizedError):
        return [(b"www-authenticate", b"Bearer")]
    return []
