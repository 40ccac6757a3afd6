"""Cross-origin requests (CORS): off unless ``cors_origins`` names the origins allowed.

Off, the server adds no ``Access-Control-*`` header and answers no preflight
(``OPTIONS`` stays a 405), so a browser will not let another site's page read
its answers, nor send it anything but a "simple" request, which the media type
check refuses (``intake.check_media_type``). On, an allowed origin's requests get
``Access-Control-Allow-Origin`` (that origin, never ``*``, so ``Vary: Origin``),
and its preflights a 204 naming the methods and headers allowed.
"""

from __future__ import annotations

from collections.abc import Iterable

Headers = list[tuple[bytes, bytes]]

_ALLOW_HEADERS = b"authorization, content-type, x-request-id, inference-header-content-length"
_EXPOSE_HEADERS = b"x-request-id, x-model-version"
_MAX_AGE_S = b"600"


class CorsPolicy:
    """The origins allowed (``*``: any); empty is off."""

    def __init__(self, origins: Iterable[str]) -> None:
        listed = [o.strip().rstrip("/").lower() for o in origins if o.strip()]
        self.enabled = bool(listed)
        self._any = "*" in listed
        self._origins = frozenset(o.encode() for o in listed)

    def allows(self, origin: bytes | None) -> bool:
        if not self.enabled or origin is None:
            return False
        return self._any or origin.rstrip(b"/").lower() in self._origins

    def headers(self, origin: bytes) -> Headers:
        """Headers for an allowed origin's actual request."""
        return [
            (b"access-control-allow-origin", origin),
            (b"access-control-expose-headers", _EXPOSE_HEADERS),
            (b"vary", b"origin"),
        ]

    def preflight_headers(self, origin: bytes, methods: tuple[str, ...]) -> Headers:
        """Headers for the 204 that answers an allowed origin's preflight."""
        return [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-methods", ", ".join((*methods, "OPTIONS")).encode()),
            (b"access-control-allow-headers", _ALLOW_HEADERS),
            (b"access-control-max-age", _MAX_AGE_S),
            (b"vary", b"origin"),
        ]
