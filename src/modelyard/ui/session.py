"""Who may use the dashboard: the server's token, traded once for a signed session cookie.

With ``serving.token`` set, every page and data route needs either the API's
``Authorization: Bearer <token>`` header or a session cookie. The login form posts the
token (never in a URL) and the name the person wants their actions recorded under; the
answer sets a cookie holding that name, the time it was issued and an HMAC of both keyed
by the token. Nothing is stored on the server, so every worker of a server accepts the
cookie of another, and changing the token ends every session. Without a token the
server only listens on loopback (``serving.launch``), and the dashboard is open there.

Hand-written rather than a session middleware: a signed cookie is a dozen lines with
``hmac``, and the middlewares of the frameworks keep their own secret key, which a
second worker or a restart would not share.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

COOKIE = "modelyard_session"
SESSION_S = 12 * 3600  # a working day; then the token is asked for again
_NAME_LIMIT = 64


@dataclass(frozen=True)
class Session:
    """A signed-in person: the name their actions are recorded under."""

    name: str


def issue(token: str, name: str, now: float) -> str:
    """A cookie value for ``name``, valid for ``SESSION_S`` from ``now``."""
    body = f"{int(now)}:{_encode(name)}"
    return f"{body}:{_sign(token, body)}"


def verify(token: str, cookie: str | None, now: float) -> Session | None:
    """The session ``cookie`` holds, if it was issued under ``token`` and has not expired."""
    if not cookie or cookie.count(":") != 2:
        return None
    issued, encoded, signature = cookie.split(":")
    if not hmac.compare_digest(signature, _sign(token, f"{issued}:{encoded}")):
        return None
    if not issued.isdigit() or not 0 <= now - int(issued) <= SESSION_S:
        return None
    try:
        return Session(_decode(encoded))
    except ValueError:
        return None


def token_matches(token: str, offered: str) -> bool:
    """Whether ``offered`` is the token (compared in constant time)."""
    return hmac.compare_digest(token.encode(), offered.encode())


def bearer_matches(token: str, authorization: str | None) -> bool:
    """Whether an ``Authorization`` header carries the token."""
    scheme, _, offered = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and token_matches(token, offered.strip())


def clean_name(name: object) -> str:
    """The name a person signs in under, checked: 1-64 printable characters."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("name must be a non-empty string: who the actions are recorded as")
    name = name.strip()
    if len(name) > _NAME_LIMIT or not name.isprintable():
        raise ValueError(f"name must be at most {_NAME_LIMIT} printable characters")
    return name


def same_origin(origin: str | None, host: str | None) -> bool:
    """A write from a page of this server: browsers send ``Origin`` on every POST, and a
    page elsewhere cannot forge it. A client without ``Origin`` (curl, scripts) is not a
    browser riding a cookie, so it passes here and is judged by its credentials."""
    if origin is None:
        return True
    scheme, _, rest = origin.partition("://")
    return scheme in ("http", "https") and host is not None and rest == host


def _sign(token: str, body: str) -> str:
    digest = hmac.new(token.encode(), f"modelyard-ui:{body}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")


def _encode(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")


def _decode(encoded: str) -> str:
    padded = encoded + "=" * (-len(encoded) % 4)
    try:
        return base64.urlsafe_b64decode(padded.encode()).decode()
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError("not a session name") from error
