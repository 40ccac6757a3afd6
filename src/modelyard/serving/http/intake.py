"""What a request must pass before its endpoint runs: the bearer token and a JSON body
(or, with the binary tensor data extension, JSON then tensor bytes) of bounded size.

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


def check_media_type(content_type: bytes | None, binary: bool = False) -> None:
    """Only JSON (``application/json``, ``*/*+json``) or no declared type is accepted;
    ``application/octet-stream`` too for a ``binary`` body (the binary tensor data
    extension: JSON then tensor bytes)."""
    if content_type is None:
        return
    media = content_type.split(b";", 1)[0].strip().lower()
    if media != b"application/json" and not media.endswith(b"+json"):
        if binary and media == b"application/octet-stream":
            return
        allowed = "application/json or application/octet-stream" if binary else "application/json"
        raise UnsupportedMediaTypeError(
            f"only {allowed} bodies are accepted, got {media.decode('latin-1')!r}"
        )


async def read_json_body(
    receive: Receive, content_type: bytes | None, length: int, limit: int, binary: bool = False
) -> bytes:
    """The request body, at most ``limit`` bytes (``length`` is Content-Length, -1 if none);
    ``binary``: it is in the binary tensor data form (see ``check_media_type``)."""
    check_media_type(content_type, binary)
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
