"""The Host allow-list, CORS policy and the exposure check at start-up (pure, no sockets)."""

from __future__ import annotations

import pytest

from modelyard.config import ServingSettings, load_settings
from modelyard.errors import ConfigurationError, HostNotAllowedError
from modelyard.serving.http.cors import CorsPolicy
from modelyard.serving.http.hosts import (
    HostAllowList,
    default_allowed_hosts,
    is_loopback,
    split_host,
)
from modelyard.serving.process.launch import check_exposure


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("localhost", ("localhost", None)),
        ("LocalHost:8000", ("localhost", "8000")),
        ("[::1]:80", ("[::1]", "80")),
        ("[::1]", ("[::1]", None)),
        ("evil.example:x", ("evil.example:x", None)),
    ],
)
def test_host_text_splits_into_name_and_port(text: str, parts: tuple[str, str | None]) -> None:
    assert split_host(text) == parts


def test_the_default_list_is_loopback_plus_a_specific_bind_address() -> None:
    assert default_allowed_hosts("127.0.0.1") == ("localhost", "127.0.0.1", "[::1]")
    assert default_allowed_hosts("0.0.0.0") == ("localhost", "127.0.0.1", "[::1]")
    assert default_allowed_hosts("::") == ("localhost", "127.0.0.1", "[::1]")
    assert default_allowed_hosts("10.0.0.5")[-1] == "10.0.0.5"
    assert default_allowed_hosts("fe80::1")[-1] == "[fe80::1]"


@pytest.mark.parametrize(
    "host", [b"localhost", b"localhost:8000", b"127.0.0.1:9", b"[::1]:8000", b"LOCALHOST"]
)
def test_loopback_names_with_any_port_are_allowed_by_default(host: bytes) -> None:
    HostAllowList(default_allowed_hosts("127.0.0.1")).check(host)


@pytest.mark.parametrize("host", [b"evil.example", b"evil.example:8000", b"127.0.0.2", b""])
def test_other_hosts_are_refused(host: bytes) -> None:
    with pytest.raises(HostNotAllowedError, match="ALLOWED_HOSTS"):
        HostAllowList(default_allowed_hosts("127.0.0.1")).check(host)


def test_no_host_header_is_answered_and_star_allows_all() -> None:
    HostAllowList(["localhost"]).check(None)
    HostAllowList(["*"]).check(b"anything.example:1")


def test_an_entry_with_a_port_allows_that_port_only() -> None:
    hosts = HostAllowList(["api.example:8000", "other.example"])
    assert hosts.allows(b"api.example:8000")
    assert not hosts.allows(b"api.example:9000")
    assert not hosts.allows(b"api.example")
    assert hosts.allows(b"other.example:1234")


def test_allowed_hosts_and_cors_origins_read_comma_separated_env() -> None:
    settings = load_settings(
        environ={
            "MODELYARD_SERVING__ALLOWED_HOSTS": "api.example, 10.0.0.5:8000",
            "MODELYARD_SERVING__CORS_ORIGINS": "https://app.example",
        }
    )
    assert settings.serving.allowed_hosts == ("api.example", "10.0.0.5:8000")
    assert settings.serving.cors_origins == ("https://app.example",)
    assert load_settings(environ={}).serving.allowed_hosts is None
    assert load_settings(environ={}).serving.cors_origins == ()
    listed = load_settings(environ={}, serving={"allowed_hosts": ["a.example"]})
    assert listed.serving.allowed_hosts == ("a.example",)
    with pytest.raises(ConfigurationError, match="allowed_hosts"):
        load_settings(environ={}, serving={"allowed_hosts": [1]})


def test_cors_is_off_without_origins_and_names_only_allowed_ones() -> None:
    assert not CorsPolicy(()).allows(b"https://app.example")
    policy = CorsPolicy(["https://app.example/"])
    assert policy.allows(b"https://app.example")
    assert not policy.allows(b"https://evil.example")
    assert not policy.allows(None)
    assert (b"access-control-allow-origin", b"https://app.example") in policy.headers(
        b"https://app.example"
    )


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("0.0.0.0", False), ("h", False)],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_listening_beyond_loopback_needs_a_token_or_insecure() -> None:
    assert check_exposure(ServingSettings(), insecure=False) is None
    assert check_exposure(ServingSettings(host="0.0.0.0", token="t"), insecure=False) is None
    with pytest.raises(ConfigurationError, match="MODELYARD_SERVING__TOKEN, or pass --insecure"):
        check_exposure(ServingSettings(host="0.0.0.0"), insecure=False)
    warning = check_exposure(ServingSettings(host="0.0.0.0"), insecure=True)
    assert warning is not None
    assert "WARNING" in warning
