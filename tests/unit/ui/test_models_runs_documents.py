"""The pure parts of the models and runs pages: histograms read off a profile's quantiles,
thinned metric histories, run columns, and the query string's checks."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.errors import ValidationError
from modelyard.tracking import RunInfo
from modelyard.ui.data.paging import names, page_size, text
from modelyard.ui.data.profiles import column_summary, equal_width_histogram, profile_summary
from modelyard.ui.data.runs import common_columns, parse_columns, thin

PROBABILITIES = np.linspace(0.0, 1.0, 101)


def test_a_histogram_from_quantiles_has_the_shape_of_the_data() -> None:
    rng = np.random.default_rng(0)
    normal = equal_width_histogram(np.quantile(rng.normal(size=20_000), PROBABILITIES), bins=10)
    shares = normal["shares"]
    assert len(normal["edges"]) == 11
    assert sum(shares) == pytest.approx(1.0)
    assert max(shares) in shares[4:6]  # the middle bins, not flat as quantile bins look
    assert shares[0] < 0.02
    assert shares[-1] < 0.02


def test_a_value_many_rows_share_keeps_its_mass_at_either_end() -> None:
    binary = np.quantile(np.r_[np.zeros(700), np.ones(300)], PROBABILITIES)
    shares = equal_width_histogram(binary, bins=4)["shares"]
    assert shares[0] == pytest.approx(0.7, abs=0.02)
    assert shares[-1] == pytest.approx(0.3, abs=0.02)
    assert equal_width_histogram([2.0] * 101) == {"edges": [2.0, 2.0], "shares": [1.0]}
    assert equal_width_histogram([]) == {"edges": [], "shares": []}


def test_a_profile_summary_draws_histograms_for_numeric_columns_only() -> None:
    numeric = {"kind": "numeric", "count": 3, "nan_fraction": 0.0, "mean": 1.0,
               "quantiles": list(np.linspace(0, 4, 101))}  # fmt: skip
    categorical = {"kind": "categorical", "count": 3, "frequencies": {"de": 0.6, "fr": 0.4}}
    summary = profile_summary({"rows": 3, "features": {"x": numeric, "c": categorical}})
    assert summary is not None
    x, c = summary["features"]
    assert x["quartiles"] == [1.0, 2.0, 3.0]
    assert len(x["histogram"]["shares"]) == 20
    assert c["top"] == [{"value": "de", "share": 0.6}, {"value": "fr", "share": 0.4}]
    assert "histogram" not in column_summary("x", numeric, with_histogram=False)
    assert profile_summary({}) is None


def test_a_long_history_is_thinned_to_the_limit_keeping_the_last_point() -> None:
    points = [(step, float(step), 0.0) for step in range(2_500)]
    kept = thin(points, limit=1_000)
    assert len(kept) <= 1_000
    assert kept[0] == points[0]
    assert kept[-1] == points[-1]
    assert thin(points[:10], limit=1_000) == points[:10]


def run(metrics: dict[str, float], params: dict[str, str]) -> RunInfo:
    return RunInfo("r", "r", "default", "FINISHED", 0.0, None, None, None, None, {},
                   params=params, metrics=metrics)  # fmt: skip


def test_the_default_columns_are_the_pages_most_logged_then_by_name() -> None:
    runs = [
        run({"auc": 1, "loss": 1, "z": 1}, {"lr": "1"}),
        run({"auc": 1, "b": 1}, {"lr": "1", "depth": "2"}),
        run({"auc": 1, "b": 1, "a": 1, "c": 1}, {}),
    ]
    assert common_columns(runs) == [
        ("metrics", "auc"),
        ("metrics", "b"),
        ("metrics", "a"),
        ("metrics", "c"),
        ("params", "lr"),
        ("params", "depth"),
    ]


def test_columns_name_a_metric_or_a_param() -> None:
    assert parse_columns(["metrics.val/auc", "params.lr"]) == [
        ("metrics", "val/auc"),
        ("params", "lr"),
    ]
    with pytest.raises(ValidationError, match="columns: 'tags.x' is not a column"):
        parse_columns(["tags.x"])


def test_the_query_string_is_checked_naming_the_parameter() -> None:
    assert page_size({}) == 50
    assert page_size({"limit": "200"}) == 200
    with pytest.raises(ValidationError, match="limit: a whole number from 1 to 200"):
        page_size({"limit": "-1"})
    assert text({"filter": "  "}, "filter") is None
    with pytest.raises(ValidationError, match="filter: at most 2000 characters"):
        text({"filter": "x" * 2001}, "filter")
    assert names({}, "columns", 8) is None
    assert names({"columns": "a, b,"}, "columns", 8) == ["a", "b"]
    with pytest.raises(ValidationError, match="columns: at most 2 items, got 3"):
        names({"columns": "a,b,c"}, "columns", 2)
