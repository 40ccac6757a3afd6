"""Feature definitions: checked when built, named as documented, stored and back unchanged."""

from __future__ import annotations

import pytest

from modelyard.errors import ValidationError
from modelyard.features import (
    Aggregation,
    Entity,
    Feature,
    FeatureRef,
    FeatureView,
    FileSource,
    StreamSource,
)
from modelyard.features.definitions import duration_label, parse_refs, seconds

CARD = Entity("card", key="card_id")
EVENTS = StreamSource(
    "transactions", fields=(Feature("amount", "float64"), Feature("merchant", "string"))
)


def stats_view(**overrides: object) -> FeatureView:
    fields: dict[str, object] = {
        "name": "card_stats",
        "entity": CARD,
        "source": EVENTS,
        "aggregations": (
            Aggregation("count", "1h"),
            Aggregation("sum", "10m", "amount"),
            Aggregation("distinct", "1d", "merchant"),
            Aggregation("time_since_last", "1d"),
        ),
    }
    return FeatureView(**{**fields, **overrides})  # type: ignore[arg-type]


def test_aggregations_are_named_after_column_function_and_window() -> None:
    view = stats_view()
    assert view.feature_names == [
        "count_1h",
        "amount_sum_10m",
        "merchant_distinct_1d",
        "time_since_last_1d",
    ]
    assert [view.dtype_of(n) for n in view.feature_names] == [
        "int64",
        "float64",
        "int64",
        "float64",
    ]


def test_a_view_comes_back_from_its_dict_with_the_same_digest() -> None:
    view = stats_view(tags={"team": "risk"})
    again = FeatureView.from_dict(view.to_dict())
    assert again == view
    assert again.digest == view.digest
    assert stats_view(ttl="2d").digest != view.digest


@pytest.mark.parametrize("ttl", [0, -5, "0s", "soon", float("nan")])
def test_a_ttl_must_be_a_positive_duration(ttl: object) -> None:
    with pytest.raises(ValidationError, match="ttl must be"):
        stats_view(ttl=ttl)


def test_a_view_reads_only_columns_its_stream_carries() -> None:
    with pytest.raises(ValidationError, match=r"reads column\(s\) \['price'\]"):
        stats_view(aggregations=(Aggregation("sum", "1h", "price"),))


def test_bad_names_and_types_are_named() -> None:
    with pytest.raises(ValidationError, match="feature name '1st' is not allowed"):
        Feature("1st", "float64")
    with pytest.raises(ValidationError, match="dtype must be one of"):
        Feature("amount", "decimal")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="needs a column"):
        Aggregation("sum", "1h")
    with pytest.raises(ValidationError, match="names feature"):
        FeatureView(
            "v",
            CARD,
            FileSource("x.parquet"),
            features=(Feature("a", "int64"), Feature("a", "int64")),
        )


def test_feature_references() -> None:
    assert str(FeatureRef.parse("card_stats:count_1h")) == "card_stats:count_1h"
    with pytest.raises(ValidationError, match="'view:feature'"):
        FeatureRef.parse("count_1h")
    with pytest.raises(ValidationError, match="named twice"):
        parse_refs(["a:b", "a:b"])


def test_durations() -> None:
    assert seconds("90s", "w") == 90.0
    assert seconds("1.5h", "w") == 5400.0
    assert [duration_label(s) for s in (90, 600, 3600, 86400, 1.5)] == [
        "90s",
        "10m",
        "1h",
        "1d",
        "1.5s",
    ]
