from __future__ import annotations

import pytest

from modelyard.ui import session

TOKEN = "s3cret"
NOW = 1_800_000_000.0


def test_a_cookie_names_who_signed_in_until_it_expires() -> None:
    cookie = session.issue(TOKEN, "Ada Lovelace", NOW)
    assert session.verify(TOKEN, cookie, NOW + 60) == session.Session("Ada Lovelace")
    assert session.verify(TOKEN, cookie, NOW + session.SESSION_S) is not None
    assert session.verify(TOKEN, cookie, NOW + session.SESSION_S + 1) is None
    assert session.verify(TOKEN, cookie, NOW - 10) is None  # issued in the future


def test_a_cookie_is_worthless_under_another_token_or_when_changed() -> None:
    cookie = session.issue(TOKEN, "ada", NOW)
    assert session.verify("another", cookie, NOW) is None
    issued, name, signature = cookie.split(":")
    forged = f"{issued}:{session.issue(TOKEN, 'root', NOW).split(':')[1]}:{signature}"
    assert session.verify(TOKEN, forged, NOW) is None
    later = f"{int(NOW) + 3600}:{name}:{signature}"
    assert session.verify(TOKEN, later, NOW + 3600) is None


@pytest.mark.parametrize("cookie", [None, "", "x", "a:b", "a:b:c:d", "nope:bmFtZQ:sig"])
def test_malformed_cookies_are_no_session(cookie: str | None) -> None:
    assert session.verify(TOKEN, cookie, NOW) is None


def test_the_bearer_header_carries_the_token() -> None:
    assert session.bearer_matches(TOKEN, f"Bearer {TOKEN}")
    assert session.bearer_matches(TOKEN, f"bearer {TOKEN}")
    assert not session.bearer_matches(TOKEN, "Bearer wrong")
    assert not session.bearer_matches(TOKEN, TOKEN)
    assert not session.bearer_matches(TOKEN, None)


def test_names_are_checked() -> None:
    assert session.clean_name("  ada ") == "ada"
    for bad in ("", "   ", None, 3, "x" * 65, "line\nbreak"):
        with pytest.raises(ValueError, match="name"):
            session.clean_name(bad)


def test_writes_must_come_from_this_servers_pages() -> None:
    assert session.same_origin(None, "127.0.0.1:8000")  # not a browser
    assert session.same_origin("http://127.0.0.1:8000", "127.0.0.1:8000")
    assert not session.same_origin("http://evil.example", "127.0.0.1:8000")
    assert not session.same_origin("null", "127.0.0.1:8000")
    assert not session.same_origin("http://127.0.0.1:8000", None)
