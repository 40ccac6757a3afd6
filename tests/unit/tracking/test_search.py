"""The ``search_runs`` filter language: parsing, and evaluating a query on a run."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelyard.errors import ValidationError
from modelyard.tracking import Condition, RunInfo, RunQuery, parse_filter
from modelyard.tracking.search import page_token, parse_page_token

RUN = RunInfo(
    id="0" * 32,
    name="train",
    experiment="fraud",
    status="FINISHED",
    start_time=0.0,
    end_time=1.0,
    seed=None,
    user=None,
    git_commit=None,
    environment={},
    params={"model": "rf"},
    metrics={"auc": 0.93},
    tags={"team": "risk"},
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ()),
        ("   ", ()),
        ("metrics.auc > 0.9", (Condition("metrics", "auc", ">", 0.9),)),
        (
            "metrics.val/auc>=1 AND params.model = 'rf' and tags.team != \"risk\"",
            (
                Condition("metrics", "val/auc", ">=", 1.0),
                Condition("params", "model", "=", "rf"),
                Condition("tags", "team", "!=", "risk"),
            ),
        ),
        ("params.model.name = rf", (Condition("params", "model.name", "=", "rf"),)),
    ],
)
def test_filters_parse_into_conditions(text: str, expected: tuple[Condition, ...]) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("auc > 0.5", "cannot read filter condition 'auc > 0.5'"),
        ("metrics.auc ~ 0.5", "cannot read filter condition"),
        ("and metrics.auc > 0.5", "cannot read filter condition 'and metrics.auc > 0.5'"),
        ("metrics.auc > high", "metric condition 'metrics.auc > high' needs a number, got 'high'"),
        ("params.model > 'a'", "params can only be compared with = or !=, got '>'"),
        ("tags.team <= 'a'", "tags can only be compared with = or !=, got '<='"),
    ],
)
def test_bad_filters_say_how_to_write_them(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_filter(text)


@given(
    key=st.from_regex(r"[A-Za-z_][\w.\-/]{0,20}", fullmatch=True),
    op=st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
    value=st.floats(allow_nan=False, allow_infinity=False),
)
def test_any_metric_condition_reads_back_as_written(key: str, op: str, value: float) -> None:
    assert parse_filter(f"metrics.{key} {op} {value!r}") == (Condition("metrics", key, op, value),)


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("", True),
        ("metrics.auc > 0.9", True),
        ("metrics.auc > 0.95", False),
        ("params.model = 'rf' and tags.team = 'risk'", True),
        ("params.model != 'rf'", False),
        ("params.depth != '3'", False),  # a param never logged matches no condition
        ("metrics.loss < 1", False),
    ],
)
def test_a_query_matches_on_the_logged_values(text: str, matches: bool) -> None:
    assert RunQuery(parse_filter(text)).matches(RUN) is matches


def test_a_query_matches_experiment_and_status() -> None:
    assert RunQuery(experiment="fraud", status="FINISHED").matches(RUN)
    assert not RunQuery(experiment="other").matches(RUN)
    assert not RunQuery(status="RUNNING").matches(RUN)


def test_a_page_token_reads_back_as_the_exact_key() -> None:
    key = (1_800_000_000.123456789, "0" * 31 + "a")
    assert parse_page_token(page_token(key)) == key


@pytest.mark.parametrize("token", ["", "nope", "0x1.0p+0_", "0x1.0p+0_a'b", "zz_ab"])
def test_a_token_that_was_not_printed_is_refused_naming_it(token: str) -> None:
    with pytest.raises(ValidationError, match="page_token .* is not one this command printed"):
        parse_page_token(token)
