"""The SVG line chart's time axis: dates by default, or what the caller writes."""

from __future__ import annotations

from modelyard.monitoring.charts import REF, Series, line_chart


def test_the_time_axis_shows_dates_by_default() -> None:
    chart = line_chart([Series("p99", [0.0, 86_400.0], [1.0, 2.0], REF)])
    assert "1970-01-01 00:00" in chart
    assert "1970-01-02 00:00" in chart


def test_the_time_axis_takes_a_label_for_elapsed_time() -> None:
    chart = line_chart(
        [Series("p99", [10.0, 1800.0], [1.0, 2.0], REF)], time_label=lambda t: f"{t / 60:g} min"
    )
    assert "0.166667 min" in chart
    assert "30 min" in chart
    assert "1970" not in chart
