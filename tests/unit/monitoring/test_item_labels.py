"""Clicks on one list accumulate; every other label is replaced by a later post."""

from __future__ import annotations

import orjson
import pytest

from modelyard.monitoring.inference_log.item_labels import merge_labels


def text(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def test_clicks_on_two_items_of_one_list_both_count_and_repeats_count_once() -> None:
    first = text({"clicked": 1, "item": "i3", "position": 2})
    second = merge_labels(first, text({"clicked": 1, "item": "i1", "position": 0}))
    assert orjson.loads(second) == {"clicked": 1, "items": ["i3", "i1"], "position": 0}
    again = merge_labels(second, text({"clicked": 1, "items": ["i1", "i3", 7]}))
    assert orjson.loads(again)["items"] == ["i3", "i1", 7]


@pytest.mark.parametrize(
    ("stored", "posted"),
    [
        (1, 0),  # a class label: a correction replaces it
        ({"converted": True}, {"converted": False, "revenue": 3.0}),  # a business event
        ({"clicked": 1, "item": "i1"}, {"clicked": 0, "item": "i1"}),  # a click withdrawn
        ({"clicked": 1, "item": "i1"}, {"clicked": 1}),  # names no item
        ("i1", {"clicked": 1, "item": "i2"}),
    ],
)
def test_any_other_label_is_replaced_by_the_later_post(stored: object, posted: object) -> None:
    assert merge_labels(text(stored), text(posted)) == text(posted)
