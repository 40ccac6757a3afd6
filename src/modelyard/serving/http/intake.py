"""What a request must pass before its endpoint runs: the bearer token and a body of a
declared JSON type (or, with the binary tensor data extension, JSON then tensor bytes)
and bounded size.

The size limit is enforced while the body is read, chunk by chunk, so an
oversized upload is refused (413) without being held in memory; a declared
``Content-Length`` over the limit is refused before reading anything.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from modelyard.errors import PayloadTooLargeError, UnauthorizedError, UnsupportedMediaTypeError

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class Disconnected(Exception):
    """The client went away before its body arrived; there is no one to answer."""


def check_bearer(authorization: bytes | None, expected: bytes) -> None:
    """Raise ``UnauthorizedError`` unless the header is exactly ``expected`` (constant time)."""
    if authorization is None or not hmac.compare_digest(authorization, expected):
        raise UnauthorizedError("this endpoint needs 'Authorization: Bearer <token>'")


def check_media_type(
    content_type: bytes | None, binary: bool = False, empty: bool = False, browser: bool = True
) -> None:
    """A POST body must declare JSON (``application/json``, ``*/*+json``, any parameters);
    a request carrying the binary tensor extension's ``Inference-Header-Content-Length``
    (``binary``) passes whatever its type (``application/octet-stream`` as a rule). An
    ``empty`` body needs no type, nor does one that no ``browser`` sent (no ``Origin``).

    Why refuse a missing or other type: a web page can make the browser POST a
    "simple" request (``text/plain``, form types, none) to a local server without
    asking it first; JSON, octet-stream and custom headers need a CORS preflight,
    which the server refuses unless ``cors_origins`` allows the page. Browsers send
    ``Origin`` with every cross-origin POST; clients that send neither it nor a type
    (tritonclient's JSON mode, scripts) are not a web page. A body of
    ``application/octet-stream`` without the extension's header would be read as JSON,
    so it is refused as before."""
    if binary:
        return
    if content_type is None:
        if empty or not browser:
            return
        raise UnsupportedMediaTypeError(
            "the request has no Content-Type; send the body as 'application/json'"
        )
    media = content_type.split(b";", 1)[0].strip().lower()
    if media != b"application/json" and not media.endswith(b"+json"):
        raise UnsupportedMediaTypeError(
            "only 'application/json' bodies are accepted (binary tensors need the "
            "'Inference-Header-Content-Length' header), got Content-Type "
            f"{media.decode('latin-1')[:100]!r}"
        )


async def read_json_body(
    receive: Receive,
    content_type: bytes | None,
    length: int,
    limit: int,
    binary: bool = False,
    browser: bool = True,
) -> bytes:
    """The request body, at most ``limit`` bytes (``length`` is Content-Length, -1 if none);
    ``binary`` and ``browser`` as ``check_media_type`` says."""
    if length >= 0:  # else the body's size is known once read (chunked, or no header)
        check_media_type(content_type, binary, empty=length == 0, browser=browser)
    body = await _read_body(receive, length, limit)
    if length < 0:
        check_media_type(content_type, binary, empty=not body, browser=browser)
    return body


async def _read_body(receive: Receive, length: int, limit: int) -> bytes:
    if length > limit:
        raise PayloadTooLargeError(f"the body has {length} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"the body is over the limit of {limit} bytes")
        if not message.get("more_body", False):
            if not chunks:
                return bytes(chunk)
            chunks.append(chunk)
            return b"".join(chunks)
        chunks.append(chunk)
