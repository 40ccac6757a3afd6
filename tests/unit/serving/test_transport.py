"""Write coalescing: a response's header and body writes leave as one send."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modelyard.serving.transport import CoalescingTransport


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


class FakeLoop:
    def __init__(self) -> None:
        self.callbacks: list[Callable[[], None]] = []

    def call_soon(self, callback: Callable[[], None]) -> None:
        self.callbacks.append(callback)

    def run_once(self) -> None:
        callbacks, self.callbacks = self.callbacks, []
        for callback in callbacks:
            callback()


def make() -> tuple[CoalescingTransport, FakeTransport, FakeLoop]:
    real, loop = FakeTransport(), FakeLoop()
    wrapped: Any = CoalescingTransport(real, loop)  # type: ignore[arg-type]
    return wrapped, real, loop


def test_head_and_body_leave_together() -> None:
    wrapped, real, loop = make()
    wrapped.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert real.sent == []
    wrapped.write(b"{}")
    assert real.sent == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
    loop.run_once()
    assert real.sent == [b"HTTP/1.1 200 OK\r\n\r\n{}"]


def test_a_lone_write_leaves_on_the_next_turn() -> None:
    wrapped, real, loop = make()
    wrapped.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    loop.run_once()
    assert real.sent == [b"HTTP/1.1 204 No Content\r\n\r\n"]


def test_close_sends_what_is_held_first() -> None:
    wrapped, real, _ = make()
    wrapped.write(b"bye")
    wrapped.close()
    assert real.sent == [b"bye"]
    assert real.closed


def test_everything_else_passes_through() -> None:
    wrapped, real, _ = make()
    assert wrapped.get_extra_info("peername") == "info:peername"
    assert not wrapped.is_closing()
