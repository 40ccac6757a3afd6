"""Feedback naming clicked items accumulates: the one case where labels merge.

Each feedback target keeps one label, and a later post replaces the earlier one (a
correction; ``monitoring.feedback``). That suits a class or a value, not clicks on a
recommended list: a user clicks item A, later item B, each posted as it happens, and
both happened. So when the stored and the posted label are both click objects naming
items (``item`` or ``items``, ``clicked`` not false), the posted one is stored with the
items of both (each once, in order of first click), its other fields winning. Any other
label replaces as before. Pure: both SQL and memory adapters call it inside their write.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["merge_labels"]


def merge_labels(stored: str, posted: str) -> str:
    """The label to store when ``posted`` arrives for a target holding ``stored`` (both
    canonical JSON text)."""
    old, new = _clicks(stored), _clicks(posted)
    if old is None or new is None:
        return posted
    items = list(old[1])
    seen = {orjson.dumps(item) for item in items}
    for item in new[1]:
        if orjson.dumps(item) not in seen:
            seen.add(orjson.dumps(item))
            items.append(item)
    merged = {**old[0], **new[0], "items": items}
    return orjson.dumps(merged, option=orjson.OPT_SORT_KEYS).decode()


def _clicks(label: str) -> tuple[dict[str, Any], list[Any]] | None:
    """(the other fields, the items) of a click object; None for any other label."""
    try:
        value = orjson.loads(label)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict) or value.get("clicked", 1) in (0, False):
        return None
    if isinstance(value.get("items"), list):
        items = value["items"]
    elif "item" in value and not isinstance(value["item"], list | dict):
        items = [value["item"]]
    else:
        return None
    return {k: v for k, v in value.items() if k not in ("item", "items")}, items
