"""Parsing and validating feedback bodies: every error names the item and the field."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelyard.errors import PayloadTooLargeError, ValidationError
from modelyard.monitoring.feedback import FeedbackItem, parse_feedback_body, validate_items


def test_a_list_of_labels_and_outcomes_parses() -> None:
    items = parse_feedback_body(
        {
            "labels": [
                {"request_id": "r1", "label": 1},
                {"request_id": "r1", "row": 2, "label": "fraud"},
                {"entity_key": "user-7", "event_time": 1700000000, "outcome": {"revenue": 12.5}},
                {"entity_key": 42, "event_time": "2024-06-10T06:13:20Z", "label": True},
            ]
        }
    )
    assert items == [
        FeedbackItem(1, request_id="r1"),
        FeedbackItem("fraud", request_id="r1", row=2),
        FeedbackItem({"revenue": 12.5}, entity_key="user-7", event_time=1700000000),
        FeedbackItem(True, entity_key="42", event_time=1718000000.0),
    ]


def test_a_single_item_is_a_body_too() -> None:
    assert parse_feedback_body({"request_id": "r", "label": 0.5}) == [
        FeedbackItem(0.5, request_id="r")
    ]


def test_an_iso_time_without_a_zone_is_utc() -> None:
    (item,) = parse_feedback_body({"entity_key": "u", "event_time": "1970-01-02", "label": 1})
    assert item.event_time == 86400.0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "the body must be a JSON object, got a list of 0"),
        ({"labels": []}, "'labels' must be a non-empty list"),
        ({"labels": [{"request_id": "a", "label": 1}], "x": 1}, "unknown field 'x'"),
        ({"labels": [{"request_id": "a", "label": 1}, 3]}, r"labels\[1\] must be an object"),
        ({"labels": [{"request_id": "a", "lable": 1}]}, r"labels\[0\]\.lable is not a feedback"),
        ({"labels": [{"request_id": "a"}]}, r"labels\[0\]\.label: give exactly one"),
        ({"request_id": "a", "label": 1, "outcome": {}}, "give exactly one of 'label'"),
        ({"request_id": "a", "label": [1, 2]}, "label must be a number, string or boolean"),
        ({"request_id": "a", "outcome": 3}, "outcome must be an object, got 3"),
        ({"labels": [{"label": 1}]}, r"labels\[0\]\.request_id: give exactly one target"),
        (
            {"request_id": "a", "entity_key": "u", "event_time": 1, "label": 1},
            "give exactly one target",
        ),
        (
            {"labels": [{"request_id": "ok", "label": 1}, {"request_id": "", "label": 1}]},
            r"labels\[1\]\.request_id must be a non-empty string",
        ),
        ({"request_id": "x" * 129, "label": 1}, "at most 128 characters"),
        (
            {"request_id": "a", "row": -1, "label": 1},
            r"row must be an integer from 0 to 2\*\*31-1, got -1",
        ),
        (
            {"request_id": "a", "row": True, "label": 1},
            r"row must be an integer from 0 to 2\*\*31-1, got True",
        ),
        (
            {"request_id": "a", "row": "2", "label": 1},
            r"row must be an integer from 0 to 2\*\*31-1, got '2'",
        ),
        ({"entity_key": "u", "label": 1}, r"labels\[0\]\.event_time is required"),
        ({"entity_key": "u", "event_time": "yesterday", "label": 1}, "ISO 8601"),
        ({"entity_key": "u", "event_time": 1, "row": 1, "label": 1}, "row applies to request"),
        ({"request_id": "a", "label": float("nan")}, "label must be a number"),
        ({"request_id": "a", "outcome": {"x": float("inf")}}, "must not contain NaN"),
        ({"request_id": "a", "outcome": {"x": "y" * 70_000}}, "the limit is 65536"),
    ],
)
def test_bad_bodies_name_the_field(body: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_feedback_body(body)


def test_too_many_items_is_a_payload_error() -> None:
    body = {"labels": [{"request_id": str(i), "label": 1} for i in range(11)]}
    with pytest.raises(PayloadTooLargeError, match="11 items; at most 10"):
        parse_feedback_body(body, max_items=10)


def test_the_python_api_checks_items_the_same_way() -> None:
    with pytest.raises(ValidationError, match=r"labels\[1\]\.event_time is required"):
        validate_items([FeedbackItem(1, request_id="a"), FeedbackItem(1, entity_key="u")])


def test_the_dedupe_key_depends_on_the_target_only() -> None:
    first = FeedbackItem(1, request_id="a", row=2)
    assert first.dedupe_key == FeedbackItem(0, request_id="a", row=2).dedupe_key
    assert first.dedupe_key != FeedbackItem(1, request_id="a", row=3).dedupe_key
    by_entity = FeedbackItem(1, entity_key="a", event_time=2.0)
    assert by_entity.dedupe_key == FeedbackItem(1, entity_key="a", event_time=2).dedupe_key
    assert by_entity.dedupe_key != first.dedupe_key
    assert FeedbackItem({"b": 1, "a": 2}, request_id="r").label_json == '{"a":2,"b":1}'


@given(
    st.dictionaries(
        st.sampled_from(
            ["request_id", "row", "label", "outcome", "entity_key", "event_time", "zzz"]
        ),
        st.none() | st.integers(-3, 3) | st.text(max_size=3) | st.floats(),
    )
)
def test_any_object_either_parses_or_raises_a_validation_error(body: dict[str, Any]) -> None:
    try:
        items = parse_feedback_body(body)
    except ValidationError:
        return
    assert len(items) == 1
