"""The HTML report: its sections, its ordering, and that it stays self-contained."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pytest

from modelyard.monitoring.drift import detect_drift
from modelyard.monitoring.live_metrics import over_time, snapshot
from modelyard.monitoring.report import (
    FeatureDistribution,
    ReportData,
    bucket_seconds,
    render_report,
    summary_rows,
)
from modelyard.monitoring.repository import DriftResult
from modelyard.monitoring.window import Window, empty_window

VOID = {"meta", "rect", "line", "circle", "polyline", "br", "hr", "img", "input", "link"}
START, END = 1_790_000_000.0, 1_790_000_000.0 + 6 * 3600


class TagBalance(HTMLParser):
    """Every non-void element closes, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def traffic(rng: np.random.Generator, n: int = 400, shift: float = 1.5) -> Window:
    ts = np.sort(rng.uniform(START, END, n))
    version = np.where(rng.uniform(size=n) < 0.75, 3, 4)
    score = rng.uniform(size=n)
    return Window(
        deployment="fraud<api>",
        start=START,
        end=END,
        request_ids=np.array([f"r{i}" for i in range(n)], dtype=object),
        ts=ts,
        version=version,
        arm=np.where(version == 3, "champion", "canary").astype(object),
        status=np.where(rng.uniform(size=n) < 0.03, 503, 200),
        latency_ms=rng.gamma(2.0, 8.0, n),
        row_request=np.arange(n),
        inputs={
            "amount": rng.lognormal(3.0, 1.0, n) * 3,
            "age": rng.normal(40, 10, n) + shift * 10,
            "channel": rng.choice(["web", "app", "pos"], n).astype(object),
            **{f"x{i}": rng.normal(size=n) for i in range(5)},
        },
        outputs={"label": (score > 0.5).astype(np.int64), "score": score},
        labels=np.where(rng.uniform(size=n) < 0.5, (rng.uniform(size=n) < score) * 1.0, np.nan),
    )


def reference(rng: np.random.Generator, n: int = 2000) -> dict[str, np.ndarray]:
    return {
        "amount": rng.lognormal(3.0, 1.0, n),
        "age": rng.normal(40, 10, n),
        "channel": rng.choice(["web", "app", "pos"], n),
        **{f"x{i}": rng.normal(size=n) for i in range(5)},
    }


@pytest.fixture
def data() -> ReportData:
    rng = np.random.default_rng(5)
    window, ref = traffic(rng), reference(rng)
    part = window.select(window.version == 3)
    report = detect_drift(ref, {k: part.inputs[k] for k in ref})
    verdicts = {f.name: f for f in report.features}
    history = [
        DriftResult(i, "fraud<api>", "fraud", 3, START + i * 3600, START + (i + 1) * 3600, 100,
                    report, START + (i + 1) * 3600)
        for i in range(6)
    ]  # fmt: skip
    return ReportData(
        deployment="fraud<api>",
        model="fraud",
        start=START,
        end=END,
        generated_at=END,
        snapshot=snapshot(window),
        timeline=over_time(window, bucket_seconds(END - START)),
        drift={3: report},
        reference_metrics={3: {"accuracy": 0.9}},
        drift_history=history,
        features=[
            FeatureDistribution(k, v, np.asarray(part.inputs[k]), verdicts[k])
            for k, v in ref.items()
        ],
        feature_version=3,
        alerts=[{"id": 1, "at": START + 60, "reason": "drift: drift_share = 0.3 > 0.1 (v3)"}],
    )


def test_the_report_has_every_section_and_escapes_names(data: ReportData) -> None:
    page = render_report(data)
    for section in ("summary", "alerts", "timeline", "features"):
        assert f'<section id="{section}">' in page
    assert "Monitoring report: fraud&lt;api&gt;" in page
    assert "<api>" not in page
    assert "drift: drift_share = 0.3 &gt; 0.1 (v3)" in page
    for title in ("requests", "p99 latency (ms)", "error rate (5xx)", "live accuracy"):
        assert title in page
    assert "6 stored check(s)" in page
    assert page.count("<svg") == 5 + len(data.features)


def test_the_report_is_self_contained_and_well_formed(data: ReportData) -> None:
    page = render_report(data)
    assert not re.search(r"https?://|//cdn|<script|<link|<img|\bsrc=|\bhref=|@import", page)
    parser = TagBalance()
    parser.feed(page)
    parser.close()
    assert parser.problems == []
    assert parser.stack == []
    assert {"html", "head", "style", "body", "table", "svg", "rect", "polyline"} <= parser.tags


def test_drifted_features_come_first_and_the_list_is_capped(data: ReportData) -> None:
    page = render_report(data)
    titles = re.findall(r'<div class="card( drifted)?"><h3>([^<]+)</h3>', page)
    features = [
        (bool(flag), name) for flag, name in titles if name in {f.name for f in data.features}
    ]
    drifted = [name for flag, name in features if flag]
    assert drifted == list(data.drift[3].drifted_features)  # strongest evidence first
    assert drifted[:1] == ["age"]
    assert features[: len(drifted)] == [(True, name) for name in drifted]
    assert "stable: " in page
    assert "DRIFTED: ks" in page
    capped = render_report(ReportData(**{**data.__dict__, "max_features": 2}))
    assert f"{len(data.features) - 2} more feature(s) not shown." in capped


def test_summary_rows_per_version_and_overall(data: ReportData) -> None:
    rows = summary_rows(data)
    assert [r["version"] for r in rows] == ["v3", "v4", "all"]
    assert rows[0]["drift"].startswith("DRIFT (")
    assert "age" in rows[0]["drift"]
    assert rows[1]["drift"] == "-"
    assert "accuracy" in rows[0]["quality"]
    assert "(ref 0.9)" in rows[0]["quality"]
    assert rows[2]["requests"] == f"{data.snapshot.overall.traffic.requests:,}"


def test_an_empty_window_still_renders() -> None:
    window = empty_window("quiet", START, END)
    page = render_report(
        ReportData("quiet", None, START, END, END, snapshot(window), over_time(window, 3600.0))
    )
    assert "No alerts fired in this window." in page
    assert "no data in this period" in page
    assert "No reference sample or live inputs." in page


def test_bucket_sizes_keep_plots_readable() -> None:
    assert bucket_seconds(3600) == 60
    assert bucket_seconds(24 * 3600) == 1800
    assert bucket_seconds(7 * 86_400) == 3 * 3600
    assert bucket_seconds(365 * 86_400) == 86_400
