"""Reading a data route's query string: page sizes, tokens and lists, each checked.

Pure functions over the query's ``Mapping``; a bad value is a ``ValidationError``
naming its parameter (the app answers 422), never a 500.
"""

from __future__ import annotations

from collections.abc import Mapping

from modelyard.errors import ValidationError

PAGE_SIZE = 50
PAGE_LIMIT = 200  # rows a page may ask for: a table the browser draws at once
_TEXT_LIMIT = 2000


def page_size(query: Mapping[str, str], default: int = PAGE_SIZE) -> int:
    """The ``limit`` parameter: rows on one page, 1 to ``PAGE_LIMIT``."""
    text = query.get("limit")
    if text is None or text == "":
        return default
    if not text.isdigit() or not 1 <= int(text) <= PAGE_LIMIT:
        raise ValidationError(f"limit: a whole number from 1 to {PAGE_LIMIT}, not {text!r}")
    return int(text)


def text(query: Mapping[str, str], name: str) -> str | None:
    """A free-text parameter (a filter, a page token), None when absent or empty."""
    value = query.get(name)
    if value is None or not value.strip():
        return None
    if len(value) > _TEXT_LIMIT:
        raise ValidationError(f"{name}: at most {_TEXT_LIMIT} characters")
    return value.strip()


def names(query: Mapping[str, str], name: str, limit: int) -> list[str] | None:
    """A comma-separated list parameter (``columns=metrics.auc,params.lr``), at most
    ``limit`` items; None when absent (the page picks), [] when given empty."""
    value = query.get(name)
    if value is None:
        return None
    items = [item.strip() for item in value.split(",") if item.strip()]
    if len(items) > limit:
        raise ValidationError(f"{name}: at most {limit} items, got {len(items)}")
    for item in items:
        if len(item) > 255:
            raise ValidationError(f"{name}: {item[:40]!r}... is over 255 characters")
    return items
