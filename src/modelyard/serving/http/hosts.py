"""Which ``Host`` headers the server answers: the defence against DNS rebinding.

A web page can make the user's browser send requests to a server on the user's
machine by pointing a name it controls at 127.0.0.1 (DNS rebinding); the
browser then sends that name in ``Host``. Answering only the names the server
is known by (loopback, the address it binds, what ``allowed_hosts`` adds)
refuses those requests, with or without a token.

A request without a ``Host`` header (HTTP/1.0 tools) is answered: a browser
always sends one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from modelyard.config.serving import ServingSettings
from modelyard.errors import HostNotAllowedError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
# Addresses that mean "every interface": they name no host a client would send.
_WILDCARDS = frozenset({"", "0.0.0.0", "::", "[::]"})


def is_loopback(host: str) -> bool:
    """True when binding ``host`` listens on this machine's loopback interface only."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _bracketed(host: str) -> str:
    """An IPv6 address as it appears in a Host header: ``[::1]``."""
    name = host.strip().lower()
    return f"[{name}]" if ":" in name and not name.startswith("[") else name


def default_allowed_hosts(bind_host: str) -> tuple[str, ...]:
    """The loopback names, plus ``bind_host`` when it is one specific address or name."""
    name = _bracketed(bind_host)
    if name in _WILDCARDS or name in LOOPBACK_NAMES:
        return LOOPBACK_NAMES
    return (*LOOPBACK_NAMES, name)


def split_host(value: str) -> tuple[str, str | None]:
    """``Host`` text as (name, port): ``"[::1]:80"`` -> ``("[::1]", "80")``."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return value, None
        rest = value[end + 1 :]
        return value[: end + 1], rest[1:] if rest.startswith(":") else None
    name, colon, port = value.rpartition(":")
    if not colon or not port.isdigit():
        return value, None
    return name, port


class HostAllowList:
    """``check(host)`` raises ``HostNotAllowedError`` unless the server answers for it.

    Entries are ``name`` (any port) or ``name:port``; ``*`` allows every host."""

    def __init__(self, entries: Iterable[str]) -> None:
        listed = [e.strip().lower() for e in entries if e.strip()]
        self.any = "*" in listed
        self._names: set[str] = set()
        self._exact: set[tuple[str, str]] = set()
        for entry in listed:
            name, port = split_host(_bracketed(entry) if entry.count(":") > 1 else entry)
            if port is None:
                self._names.add(name)
            else:
                self._exact.add((name, port))
        # Host values already judged, read by the app before it calls ``check`` (None: no
        # Host header, answered as the module docstring says).
        self.seen: dict[bytes | None, bool] = {None: True}

    @classmethod
    def from_settings(cls, serving: ServingSettings) -> HostAllowList:
        entries = serving.allowed_hosts
        return cls(default_allowed_hosts(serving.host) if entries is None else entries)

    def allows(self, host: bytes) -> bool:
        if self.any:
            return True
        known = self.seen.get(host)
        if known is None:
            name, port = split_host(host.decode("latin-1"))
            known = name in self._names or (port is not None and (name, port) in self._exact)
            if len(self.seen) < 1024:  # a memo for the few names clients really use
                self.seen[host] = known
        return known

    def check(self, host: bytes | None) -> None:
        if host is not None and not self.allows(host):
            shown = host.decode("latin-1")[:100]
            raise HostNotAllowedError(
                f"this server does not answer for host {shown!r}; add it to the "
                "MODELYARD_SERVING__ALLOWED_HOSTS setting (comma-separated, '*' for any)"
            )
