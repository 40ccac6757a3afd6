"""The recommender demo's report renders its figures, tables and plots from plain data."""

from __future__ import annotations

from modelyard.demos.recommender.demo import OffPolicyCheck, Phase, RecommenderDemo, Scenario
from modelyard.demos.recommender.report import render_html, render_markdown
from modelyard.demos.recommender.traffic import Day
from modelyard.recommend import Click, OfflineQuality, OffPolicyEstimate, Served, judge_ctr
from modelyard.routing import Sequential


def test_report_shows_each_phase_and_the_off_policy_check() -> None:
    weights = {"popularity": 50.0, "mf": 50.0}
    day = Day(
        served=[
            Served("r1", "u1", "popularity", 1, ("i1", "i2"), (0.9, 0.9), 1.0),
            Served("r2", "u2", "mf", 2, ("i3", "i1"), (0.9, 0.05), 2.0),
        ],
        clicks=[Click("r2", "i1")],
    )
    look = judge_ctr({"popularity": 300, "mf": 300}, {"popularity": 30, "mf": 90}, "popularity",
                     weights, Sequential(tau=0.05, min_samples_per_arm=100))  # fmt: skip
    phase = Phase("popularity vs MF", "popularity", "mf", weights, [day], [look], "mf")
    check = OffPolicyCheck("MF", "popularity", OffPolicyEstimate(1, 0.1, 0.2, 1, 1.0), 0.3, 0.25)
    demo = RecommenderDemo(
        Scenario(), {"mf": OfflineQuality(2, 0.2, 0.3, 0.5, 10)}, [phase], [check], 4, 12.0
    )
    text = render_markdown(demo)
    assert "| mf | 2 | 1 | 100.00% |" in text
    assert "verdict: **winner**, may stop: **True**" in text
    assert "| MF | popularity | 0.100 | 0.200 | 0.300 |" in text
    page = render_html(demo)
    assert page.count("<svg") == 2  # CTR per day, click-through by position
