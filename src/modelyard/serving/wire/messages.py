"""How values and names read in error messages: ``'abc'``, ``null``, ``a list``, and
``'a', 'b' and 3 more``, so every message says what arrived in the same words."""

from __future__ import annotations

from collections.abc import Iterable


def json_kind(value: object) -> str:
    """How a JSON value reads in an error message: ``'abc'``, ``null``, ``a list``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return repr(text)
    if isinstance(value, int | float):
        return repr(value)
    return shape_of(value)


def shape_of(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return json_kind(value) if value is None or isinstance(value, str | bool) else "a number"


def names_list(names: Iterable[str], limit: int = 8) -> str:
    """``'a', 'b', 'c'`` (and how many more), for messages that list fields."""
    items = list(names)
    shown = ", ".join(repr(n) for n in items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"
