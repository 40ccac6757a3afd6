"""The one code -> status table (HTTP and gRPC)."""

from __future__ import annotations

import orjson
import pytest

from modelyard.errors import (
    AliasNotFoundError,
    DeadlineExceededError,
    MalformedRequestError,
    MethodNotAllowedError,
    ModelFailedError,
    ModelNotFoundError,
    ModelNotReadyError,
    ModelyardError,
    OverloadedError,
    PayloadTooLargeError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
    UntrustedFormatError,
    ValidationError,
    VersionNotFoundError,
)
from modelyard.serving.wire.status import (
    STATUSES,
    error_body,
    error_headers,
    grpc_status,
    http_status,
)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ValidationError("x"), 422),
        (MalformedRequestError("x"), 400),
        (UnsupportedMediaTypeError("x"), 415),
        (PayloadTooLargeError("x"), 413),
        (ModelNotFoundError("x"), 404),
        (VersionNotFoundError("x"), 404),
        (AliasNotFoundError("x"), 404),
        (UnauthorizedError("x"), 401),
        (MethodNotAllowedError("x", ("GET",)), 405),
        (ModelNotReadyError("x"), 503),
        (OverloadedError("x"), 503),
        (DeadlineExceededError("x"), 504),
        (ModelFailedError("x"), 500),
        (UntrustedFormatError("x"), 500),
        (ModelyardError("x"), 500),
    ],
)
def test_status_of_each_code(error: ModelyardError, status: int) -> None:
    assert http_status(error) == status


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ValidationError("x"), "INVALID_ARGUMENT"),
        (MalformedRequestError("x"), "INVALID_ARGUMENT"),
        (UnsupportedMediaTypeError("x"), "INVALID_ARGUMENT"),
        (PayloadTooLargeError("x"), "RESOURCE_EXHAUSTED"),
        (ModelNotFoundError("x"), "NOT_FOUND"),
        (VersionNotFoundError("x"), "NOT_FOUND"),
        (UnauthorizedError("x"), "UNAUTHENTICATED"),
        (MethodNotAllowedError("x", ("GET",)), "UNIMPLEMENTED"),
        (ModelNotReadyError("x"), "UNAVAILABLE"),
        (OverloadedError("x"), "UNAVAILABLE"),
        (DeadlineExceededError("x"), "DEADLINE_EXCEEDED"),
        (ModelFailedError("x"), "INTERNAL"),
        (ModelyardError("x"), "INTERNAL"),
    ],
)
def test_grpc_status_of_each_code(error: ModelyardError, status: str) -> None:
    assert grpc_status(error) == status


def test_every_grpc_status_is_one_grpc_has() -> None:
    grpc = pytest.importorskip("grpc")
    for row in STATUSES.values():
        assert grpc.StatusCode[row.grpc]


def test_a_new_subclass_inherits_its_parents_status() -> None:
    class OddInput(ValidationError):
        code = "odd_input"

    assert http_status(OddInput("x")) == 422
    assert grpc_status(OddInput("x")) == "INVALID_ARGUMENT"


def test_error_body_is_the_protocols_error_object() -> None:
    assert orjson.loads(error_body("bad", "invalid_input")) == {
        "error": "bad",
        "code": "invalid_input",
    }


def test_error_headers() -> None:
    assert error_headers(OverloadedError("x"), 503) == [(b"retry-after", b"1")]
    assert error_headers(MethodNotAllowedError("x", ("GET", "HEAD")), 405) == [
        (b"allow", b"GET, HEAD")
    ]
    assert error_headers(UnauthorizedError("x"), 401) == [(b"www-authenticate", b"Bearer")]
    assert error_headers(ValidationError("x"), 422) == []
