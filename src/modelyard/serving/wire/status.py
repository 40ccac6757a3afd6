"""The one table that maps error codes to HTTP statuses, and the error body.

Domain code raises ``ModelyardError`` subclasses (``modelyard.errors``) that carry
a stable ``code``; only this module speaks HTTP. A code missing from the table
inherits the status of the nearest ancestor class that has one, so a new subclass
elsewhere never turns into a 500 by accident::

    ValidationError (invalid_input, 422)
    ├── MalformedRequestError       malformed_request        400
    │   └── HostNotAllowedError     host_not_allowed         400
    ├── UnsupportedMediaTypeError   unsupported_media_type   415
    └── PayloadTooLargeError        payload_too_large        413
    NotFoundError (not_found, 404)
    └── RouteNotFoundError          route_not_found          404
    ServingError (serving_error, 500)
    ├── UnauthorizedError           unauthorized             401
    ├── MethodNotAllowedError       method_not_allowed       405
    ├── ModelNotReadyError          model_not_ready          503
    ├── OverloadedError             overloaded               503 + Retry-After
    ├── DeadlineExceededError       deadline_exceeded        504
    └── ModelFailedError            model_failed             500
"""

from __future__ import annotations

import orjson

from modelyard.errors import MethodNotAllowedError, ModelyardError, UnauthorizedError

HTTP_STATUS: dict[str, int] = {
    "invalid_input": 422,
    "malformed_request": 400,
    # 400 rather than 421 Misdirected Request: a client may retry a 421 on a new
    # connection (RFC 9110 15.5.20), which would only be refused again; Django and
    # Starlette's TrustedHostMiddleware answer a bad Host with 400 too.
    "host_not_allowed": 400,
    "unsupported_media_type": 415,
    "payload_too_large": 413,
    "not_found": 404,
    "conflict": 409,
    "unauthorized": 401,
    "method_not_allowed": 405,
    "model_not_ready": 503,
    "overloaded": 503,
    "deadline_exceeded": 504,
    "serving_error": 500,
    "modelyard_error": 500,
}

# Seconds a client should wait before retrying a 503 (shed or not ready yet).
RETRY_AFTER_S = 1


def http_status(error: ModelyardError) -> int:
    """The HTTP status for ``error``: its code's, else its nearest ancestor's, else 500."""
    for cls in type(error).__mro__:
        status = HTTP_STATUS.get(getattr(cls, "code", ""))
        if status is not None:
            return status
    return 500


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
