"""Windowed aggregates as of a time: the half-open window, empty windows, nulls."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.features import Aggregation
from modelyard.features.windows import aggregate, horizon

T = 10_000.0
AGGREGATIONS = (
    Aggregation("count", "1h"),
    Aggregation("sum", "1h", "amount"),
    Aggregation("mean", "1h", "amount"),
    Aggregation("min", "1h", "amount"),
    Aggregation("max", "1h", "amount"),
    Aggregation("distinct", "1h", "merchant"),
    Aggregation("time_since_last", "1h"),
)


def test_events_in_the_half_open_window_count() -> None:
    times = np.array([T - 3600.0, T - 3599.0, T - 10.0, T, T + 1.0])  # first: just outside
    columns = {
        "amount": np.array([100.0, 1.0, np.nan, 3.0, 50.0]),
        "merchant": np.array(["a", "b", None, "b", "c"], dtype=object),
    }
    values = aggregate(times, columns, AGGREGATIONS, T)
    assert values == {
        "count_1h": 3,
        "amount_sum_1h": 4.0,
        "amount_mean_1h": 2.0,
        "amount_min_1h": 1.0,
        "amount_max_1h": 3.0,
        "merchant_distinct_1h": 1,
        "time_since_last_1h": 0.0,
    }


def test_an_empty_window_is_zero_or_null_as_defined() -> None:
    empty = np.array([], dtype=np.float64)
    columns = {"amount": empty, "merchant": np.array([], dtype=object)}
    values = aggregate(empty, columns, AGGREGATIONS, T)
    assert values["count_1h"] == 0
    assert values["amount_sum_1h"] == 0.0
    assert values["merchant_distinct_1h"] == 0
    assert values["amount_mean_1h"] is None
    assert values["time_since_last_1h"] is None


def test_integer_columns_stay_integers() -> None:
    values = aggregate(
        np.array([T - 1.0, T]),
        {"amount": np.array([2, 5])},
        (Aggregation("sum", "1h", "amount"), Aggregation("max", "1h", "amount")),
        T,
    )
    assert values == {"amount_sum_1h": 7, "amount_max_1h": 5}
    assert isinstance(values["amount_sum_1h"], int)


def test_horizon_is_the_largest_window() -> None:
    assert horizon(AGGREGATIONS) == pytest.approx(3600.0)
    assert horizon([]) == 0.0
