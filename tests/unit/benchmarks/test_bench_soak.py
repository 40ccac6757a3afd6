"""The soak benchmark's verdict rule, its per-process labels, summary and chart, on
simulated samples (no server, no clock)."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks" / "serving"))

import bench_soak as soak  # noqa: E402

MINUTES = [60.0 * i for i in range(31)]  # a 30-minute soak sampled every minute


def test_a_flat_series_is_bounded() -> None:
    found = soak.trend(MINUTES, [230.0] * len(MINUTES), floor_per_h=16.0)
    assert found.verdict == "bounded"
    assert found.slope_per_h == 0.0
    assert (found.start, found.end, found.peak) == (230.0, 230.0, 230.0)


def test_a_steady_leak_is_growing() -> None:
    # 1 MiB a minute on 230 MiB: 60 MiB an hour, over both the floor and 10% of the level.
    values = [230.0 + t / 60 for t in MINUTES]
    found = soak.trend(MINUTES, values, floor_per_h=16.0)
    assert found.verdict == "growing"
    assert found.slope_per_h == pytest.approx(60.0)


def test_growth_during_warm_up_only_is_bounded() -> None:
    # Caches fill in the first ten minutes, then the level holds: the first half is left out.
    values = [230.0 + min(t, 600.0) / 6 for t in MINUTES]
    assert soak.trend(MINUTES, values, floor_per_h=16.0).verdict == "bounded"


def test_a_slope_under_the_allowance_is_bounded() -> None:
    # 20 MiB an hour on a 400 MiB process: over the 16 MiB floor, under 10% of the level.
    values = [400.0 + 20.0 * t / 3600 for t in MINUTES]
    found = soak.trend(MINUTES, values, floor_per_h=16.0)
    assert found.allowance_per_h == pytest.approx(0.10 * np.mean(values[15:]))
    assert found.verdict == "bounded"


def test_noise_without_a_trend_is_bounded_though_its_fitted_slope_is_large() -> None:
    rng = np.random.default_rng(7)
    values = list(20.0 + rng.normal(0, 8.0, len(MINUTES)))  # p99 ms on a shared machine
    found = soak.trend(MINUTES, values, floor_per_h=1.0)
    assert found.verdict == "bounded"


def test_absent_values_are_skipped_and_too_few_give_no_verdict() -> None:
    values: list[float | None] = [None] * 25 + [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert soak.trend(MINUTES, values, floor_per_h=0.0).start == 1.0
    assert soak.trend(MINUTES[:4], [1.0, 2.0, 3.0, 4.0], 0.0).verdict == "too short"
    assert soak.trend(MINUTES, [None] * len(MINUTES), 0.0).verdict == "too short"


def test_a_replaced_worker_is_a_new_line(monkeypatch: pytest.MonkeyPatch) -> None:
    roles = {10: "supervisor", 11: "resource tracker"}
    monkeypatch.setattr(soak, "process_role", lambda pid, session: roles.get(pid, "worker"))
    names = soak.ProcessNames(session=10)
    assert [names.label(p) for p in (10, 11, 12, 13, 12)] == [
        "supervisor",
        "resource tracker",
        "worker 1",
        "worker 2",
        "worker 1",
    ]
    assert names.label(14) == "worker 3"  # worker 2 (13) was replaced by 14


def test_the_supervisor_is_the_session_leader() -> None:
    assert soak.process_role(4321, session=4321) == "supervisor"


def sample(t: float, *, db_mib: float, rss: float, requests: int = 1000) -> soak.Sample:
    return soak.Sample(
        t=t, window_s=10.0, requests=requests, ok=requests - 1, non_2xx=1,
        errors={"503": 1}, rate=requests / 10.0, p50_ms=1.0, p99_ms=5.0, max_ms=9.0,
        rss_mib={"supervisor": rss, "worker 1": 200.0}, fds={"supervisor": 30, "worker 1": 40},
        cpu_s={"supervisor": t / 100, "worker 1": t / 20},
        disk_mib={"database": db_mib, "database -wal": 4.0, "inference log WAL": 9.0,
                  "request log": db_mib / 2},
        load1=2.0,
    )  # fmt: skip


def test_the_summary_gives_totals_verdicts_and_bytes_a_request() -> None:
    # The database grows by 1 MiB per window of 1,000 requests: 1,048.576 bytes a request.
    samples = [sample(10.0 * (i + 1), db_mib=float(i), rss=250.0) for i in range(12)]
    lines, figures = soak.summarise(samples, target_rate=100.0)
    assert figures["requests"] == 12_000
    assert figures["answered_2xx"] == 11_988
    assert figures["errors"] == {"503": 12}
    assert figures["database bytes per request"] == pytest.approx(1048.576)
    assert figures["trends"]["RSS (MiB): supervisor"]["verdict"] == "bounded"
    assert any(line.startswith("disk (MiB): database ") and "grows with traffic" in line
               for line in lines)  # fmt: skip
    assert any("1,049 bytes per request" in line for line in lines)


def test_cpu_per_request_is_per_window() -> None:
    samples = [sample(10.0 * (i + 1), db_mib=0.0, rss=250.0) for i in range(3)]
    values = soak.cpu_per_request_us(samples)
    assert values[0] is None  # no CPU reading before the first window
    # 10 s later each window: 0.1 + 0.5 CPU seconds over 1,000 requests.
    assert values[1] == pytest.approx(600.0)


def test_the_chart_is_one_standalone_svg_with_a_title_per_group() -> None:
    samples = [sample(10.0 * (i + 1), db_mib=float(i), rss=250.0 + i) for i in range(8)]
    text = soak.chart(samples, 100.0, "soak <test>")
    root = ElementTree.fromstring(text)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    titles = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "soak <test>" in titles
    for group in ("RSS (MiB)", "open files", "disk (MiB)", "latency (ms)", "rate (req/s)"):
        assert group in titles
    assert "80 s" in titles  # the time axis is elapsed time, not a date
