"""Request ids: a client's sane id is kept, anything else replaced."""

from __future__ import annotations

import pytest

from modelyard.serving.wire.requestids import RequestIds


def test_generated_ids_are_unique_and_prefixed() -> None:
    ids = RequestIds("abc")
    assert [ids.take(None) for _ in range(3)] == ["abc-1", "abc-2", "abc-3"]
    assert RequestIds().take(None) != RequestIds().take(None)


def test_a_sane_client_id_is_kept() -> None:
    assert RequestIds("p").take(b"order-42 retry/1") == "order-42 retry/1"


@pytest.mark.parametrize("bad", [b"", b"x" * 129, "caf\u00e9".encode(), b"a\tb", b"a\x00b"])
def test_other_ids_are_replaced(bad: bytes) -> None:
    assert RequestIds("p").take(bad) == "p-1"
