"""How a Redis stream message becomes an event (no Redis here: the fields as they come)."""

from __future__ import annotations

import pytest

from modelyard.errors import ValidationError
from modelyard.features.streams import decode_message

TYPES = {"amount": "float64", "n": "int64", "shop": "string", "online": "bool"}


def test_a_json_message_is_its_object_with_the_message_id_as_event_id() -> None:
    fields = {b"data": b'{"card_id": "c1", "event_time": 12.5, "amount": 3, "n": 2}'}

    assert decode_message("17-0", fields, TYPES) == {  # type: ignore[arg-type]
        "card_id": "c1",
        "event_time": 12.5,
        "amount": 3,
        "n": 2,
        "event_id": "17-0",
    }


def test_flat_fields_are_read_by_their_declared_types() -> None:
    fields = {
        b"card_id": b"c1",
        b"event_time": b"2024-01-01T00:00:00Z",
        b"amount": b"12.5",
        b"n": b"7",
        b"shop": b"42",
        b"online": b"True",
        b"event_id": b"mine",
    }

    assert decode_message("1-0", fields, TYPES) == {  # type: ignore[arg-type]
        "card_id": "c1",
        "event_time": "2024-01-01T00:00:00Z",
        "amount": 12.5,
        "n": 7,
        "shop": "42",
        "online": True,
        "event_id": "mine",
    }
    assert decode_message("1-0", {b"n": b"", b"card_id": b"x"}, TYPES)["n"] is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({b"data": b"{not json"}, r"message 5-0: its data is not JSON"),
        ({b"data": b"[1, 2]"}, r"its data must be a JSON object, got list"),
        ({b"n": b"seven"}, r"field 'n' \(int64\) cannot be 'seven'"),
        ({b"amount": b"1,5"}, r"field 'amount' \(float64\) cannot be '1,5'"),
        ({b"online": b"maybe"}, r"field 'online' \(bool\) must be true or false, got 'maybe'"),
    ],
)
def test_a_message_that_cannot_be_an_event_says_why(fields: dict[bytes, bytes], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        decode_message("5-0", fields, TYPES)  # type: ignore[arg-type]


def test_a_flat_event_time_is_a_number_when_it_reads_as_one() -> None:
    types = {**TYPES, "card_id": "int64"}
    fields = {b"card_id": b"42", b"ts": b"1700000000.25"}

    event = decode_message("1-0", fields, types, event_time="ts")  # type: ignore[arg-type]

    assert event == {"card_id": 42, "ts": 1_700_000_000.25, "event_id": "1-0"}
