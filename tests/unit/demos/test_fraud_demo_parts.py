"""The fraud demo's pure parts: its timeline, how it reads the story, the report's
rendering and the live panel, on plain data."""

from __future__ import annotations

import math
import re
from html.parser import HTMLParser
from types import MappingProxyType
from typing import Any

import pytest
from rich.console import Console

from modelyard.demos.fraud.demo import Progress, _Story
from modelyard.demos.fraud.live import AFTER, BEFORE, Decisions, LiveStats
from modelyard.demos.fraud.report import (
    DemoRecord,
    portfolio_rows,
    render_html,
    render_markdown,
    requests_in_metrics,
)
from modelyard.demos.fraud.scenario import DAY, DEFAULT, FAST, Scenario
from modelyard.demos.fraud.view import panel
from modelyard.demos.fraud.watch import Observation, StoryEvent
from modelyard.errors import ValidationError

NOW = 1_800_000_000.0


def test_the_timeline_ends_now_and_keeps_within_the_feature_stores_horizon() -> None:
    for scenario in (DEFAULT, FAST):
        line = scenario.timeline(NOW)
        assert line.live_end == NOW
        assert line.history_start < line.train_start < line.live_start < line.drift_at < NOW
        assert NOW - line.history_start <= 6.5 * DAY
        assert line.drift_at - line.live_start == scenario.drift_after_days * DAY
        # a drift check window spans about a simulated day
        assert scenario.monitor_window_s * scenario.speedup >= 0.9 * DAY


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"speedup": 0.0}, "speedup must be a positive number"),
        ({"cards": -1}, "cards must be a positive number"),
        ({"drift_after_days": 5.0}, "must fall inside the live window"),
        ({"history_days": 4.0}, "must stay under 6.5"),
        ({"warm_up_days": 3.0}, "must be shorter than history_days"),
        ({"fraud_label_delay_s": (5.0, 1.0)}, "fraud_label_delay_s"),
        ({"threads": math.inf}, "threads must be a positive number"),
    ],
)
def test_a_bad_scenario_is_refused_naming_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Scenario("bad", **changes)


def _seen(champion: int, *events: StoryEvent, canary: int | None = None) -> Observation:
    return Observation(champion, canary, 10.0 if canary else 0.0, (), None, events)


def test_the_story_is_read_from_the_events_in_order() -> None:
    line = DEFAULT.timeline(NOW)
    story = _Story(champion=1)
    assert story.phase(_seen(1), line.live_start, line) == "live: before the drift"
    assert story.phase(_seen(1), line.drift_at, line) == "drift: the world changed"
    alert = StoryEvent(NOW, "alert", "input-drift")
    assert story.phase(_seen(1, alert), line.drift_at, line) == "drift alert"
    started = StoryEvent(NOW, "retrain.started", "alert")
    assert story.phase(_seen(1, alert, started), line.drift_at, line) == "retraining"
    assert story.phase(_seen(1, alert, started, canary=2), NOW, line) == "canary v2 at 10%"
    promoted = _seen(2, alert, started)
    assert story.promoted(promoted)
    assert story.phase(promoted, NOW, line) == "retrained v2 promoted"
    story.broken = 3
    assert not story.rolled_back(promoted)
    other = StoryEvent(NOW, "rollout.rollback", "", {"canary": 4})
    assert not story.rolled_back(_seen(2, other))
    rollback = StoryEvent(NOW, "rollout.rollback", "decisions differ", {"canary": 3})
    assert story.rolled_back(_seen(2, rollback))
    assert story.phase(_seen(2, rollback), NOW, line) == "v3 rolled back"


METRICS = """# HELP modelyard_requests_total Requests answered
# TYPE modelyard_requests_total counter
modelyard_requests_total{model="fraud",version="1",status="200"} 120.0
modelyard_requests_total{model="fraud",version="2",status="200"} 30.0
modelyard_requests_total{model="fraud",version="2",status="422"} 2.0
modelyard_requests_total{model="other",version="1",status="200"} 7.0
"""


def test_requests_are_counted_from_the_servers_metrics_text() -> None:
    assert requests_in_metrics(METRICS) == 152
    assert requests_in_metrics(METRICS, "other") == 7
    assert requests_in_metrics("") == 0


def _record() -> DemoRecord:
    decided = {"answered": 100, "flagged": 2, "fraud_seen": 4, "fraud_caught": 3}
    nothing = {"answered": 0, "flagged": 0, "fraud_seen": 0, "fraud_caught": 0}
    return DemoRecord(
        scenario={**DEFAULT.__dict__, "simulator": {}},
        timeline={},
        began=NOW,
        ended=NOW + 120,
        interrupted=False,
        datasets=[
            {"dataset": "fraud-champion / train", "version": 1, "rows": 10, "fingerprint": "ab"}
        ],
        versions=[
            {
                "version": 1,
                "outcome": "first champion, serving",
                "roc_auc_at_registration": 0.99,
                "answered": 100,
                "before_drift": decided,
                "after_drift": nothing,
            }
        ],
        serving={
            "requests_logged": 150,
            "requests_in_metrics": 150,
            "server_p50_ms": 1.0,
            "server_p99_ms": 9.0,
            "live_requests": 100,
            "live_seconds": 10.0,
            "live_rate_per_s": 10.0,
            "live_p50_ms": 2.0,
            "live_p99_ms": 20.0,
            "load_throughput_per_s": 1000.0,
            "load_connections": 8,
            "load_seconds": 5.0,
            "load_p50_ms": 3.0,
            "load_p99_ms": 12.0,
            "load_errors": 0,
        },
        cost={"price_per_hour": 0.1, "per_1000_predictions": 0.1 / 3600},
        story=[
            {"offset_s": 65.0, "kind": "alert", "text": "input <drift> | x", "figures": {"a": 0.5}}
        ],
        acts={"drift_alert": True, "retrain": False, "promotion": False, "rollback": False},
        series={
            "times": [NOW, NOW + 1],
            "rate": {"1": [5.0, 6.0]},
            "caught": [0.5, None],
            "drift": {"1": {"times": [NOW], "share": [0.5], "drifted": [True]}},
        },
    )


def test_the_portfolio_table_holds_every_figure_of_the_record() -> None:
    rows = dict(portfolio_rows(_record()))
    assert "3/4 fraud (75%), flagged 2.0%" in rows["model v1"]
    assert "after the drift" not in rows["model v1"]  # it served none of it
    assert "1000 predictions/s on 8 connections" in rows["under load"]
    assert "$0.000028 per 1,000 predictions at $0.1/hour" in rows["cost"]
    assert rows["counted"] == "150 requests in the inference log, 150 in /metrics"


def test_markdown_and_html_escape_and_stay_self_contained() -> None:
    record = _record()
    markdown = render_markdown(record)
    assert "| +01:05 | alert | input <drift> / x | a 0.5 |" in markdown
    assert "- retrain: no" in markdown
    page = render_html(record)
    HTMLParser().feed(page)  # parses
    assert "input &lt;drift&gt;" in page
    assert page.count("<svg") == 3
    assert not re.search(r"<script|https?://(?!www\.w3\.org)", page)


def test_the_live_panel_renders_a_moment_of_the_run() -> None:
    line = DEFAULT.timeline(NOW)
    stats = LiveStats(
        transactions=1000, requests_sent=400, answered=398, failed=2,
        failures=MappingProxyType({503: 2}), latency_p50_ms=2.0, latency_p99_ms=math.nan,
        elapsed_s=4.0, requests_per_s=100.0, simulated_time=line.drift_at + 60,
        pushes_sent=10, events_pushed=398, push_failures=0, labels_sent=300,
        labels_pending=98, label_failures=0, versions=MappingProxyType({"1": 398}),
        decisions=MappingProxyType(
            {("1", BEFORE): Decisions(398, 5, 4, 3), ("1", AFTER): Decisions()}
        ),
        fraud_seen=4, fraud_caught=3, flagged=5, stopped=False,
    )  # fmt: skip
    seen = Observation(1, 2, 10.0, ("amount",), 0.25, (StoryEvent(NOW, "alert", "drift"),))
    console = Console(width=120, record=True, force_terminal=False)
    console.print(panel(Progress("canary v2 at 10%", 64.0, line, stats, seen)))
    text = console.export_text()
    assert "canary v2 at 10%" in text
    assert "after the drift" in text
    assert "p99 -" in text
    assert "champion v1, canary v2 at 10%" in text
    assert "25% of inputs drifted (amount)" in text
