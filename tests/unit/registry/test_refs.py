import pytest

from modelyard.errors import ValidationError
from modelyard.registry.refs import ModelRef, check_alias, parse_ref


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fraud", ModelRef("fraud")),
        ("fraud/3", ModelRef("fraud", version=3)),
        ("fraud@champion", ModelRef("fraud", alias="champion")),
        ("fraud@latest", ModelRef("fraud")),
        ("my.model-2", ModelRef("my.model-2")),
    ],
)
def test_references_people_type(text: str, expected: ModelRef) -> None:
    assert parse_ref(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fraud/0", "positive integer"),
        ("fraud/x", "positive integer"),
        ("../etc", r"model name '\.\.' is not allowed"),
        ("fraud@Champion", "alias 'Champion' is not allowed"),
        ("", "model name '' is not allowed"),
    ],
)
def test_bad_references_say_what_is_allowed(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_ref(text)


def test_latest_is_reserved() -> None:
    with pytest.raises(ValidationError, match="not 'latest'"):
        check_alias("latest")
