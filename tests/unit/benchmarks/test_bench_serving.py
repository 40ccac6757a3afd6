"""The serving benchmark's rule for its baseline: a round that ran on one core is left out."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks" / "serving"))

import bench_serving as bench  # noqa: E402


def measurement(server: str, rps: float, cpu_by_process: dict[int, float]) -> bench.Measurement:
    return bench.Measurement(
        server=server,
        connections=32,
        duration_s=10.0,
        requests=int(rps * 10),
        rps=rps,
        p50_ms=1.0,
        p90_ms=2.0,
        p99_ms=4.0,
        max_ms=9.0,
        errors=0,
        load_before=1.0,
        server_cpu_us=50.0,
        client_cpu_us=10.0,
        process_cpu_s=cpu_by_process,
    )


def summary(server: str, *runs: bench.Measurement) -> bench.Summary:
    return bench.Summary(server, server, 32, list(runs))


def test_the_busiest_process_share_is_of_the_server_cpu() -> None:
    assert measurement("x", 1.0, {1: 0.1, 2: 4.0, 3: 4.0}).busiest_share == 4.0 / 8.1
    assert measurement("x", 1.0, {1: 0.0, 2: 8.0, 3: 0.0}).busiest_share == 1.0


def test_a_round_on_one_core_is_left_out_of_the_baseline() -> None:
    baseline = summary(
        "fastapi-ort",
        measurement("fastapi-ort", 15_000, {2: 5.0, 3: 5.0}),
        measurement("fastapi-ort", 9_000, {2: 9.0, 3: 0.1}),
        measurement("fastapi-ort", 16_000, {2: 4.0, 3: 6.0}),
    )
    assert bench.baseline_rps(baseline) == (15_500, 1)


def test_all_rounds_count_when_none_was_spread() -> None:
    baseline = summary(
        "fastapi-ort",
        measurement("fastapi-ort", 9_000, {2: 9.0, 3: 0.1}),
        measurement("fastapi-ort", 10_000, {2: 0.0, 3: 9.0}),
    )
    assert bench.baseline_rps(baseline) == (9_500, 2)


def test_the_report_says_which_rounds_it_left_out() -> None:
    modelyard = summary(
        "modelyard",
        measurement("modelyard", 31_000, {2: 5.0, 3: 5.0}),
        measurement("modelyard", 30_000, {2: 5.0, 3: 5.0}),
    )
    baseline = summary(
        "fastapi-ort",
        measurement("fastapi-ort", 15_500, {2: 5.0, 3: 5.0}),
        measurement("fastapi-ort", 9_000, {2: 9.0, 3: 0.1}),
    )
    text = bench.report([modelyard, baseline], "validation on")
    assert ">= 2.5x FastAPI+ort: 2.00x (median of the rounds' ratios; 1.97x" in text
    assert "-> FAIL" in text
    assert "1 of 2 FastAPI + onnxruntime rounds are left out" in text


def test_the_ratio_target_pairs_each_round_with_its_own_baseline() -> None:
    # The machine slowed down in round 1 for every server: the medians' ratio says 2.6x,
    # the rounds themselves 1.7x, 2.6x and 2.3x.
    rounds = [(10_200, 5_950), (15_700, 5_960), (16_300, 7_010)]
    modelyard = summary(
        "modelyard", *(measurement("modelyard", a, {2: 1, 3: 1}) for a, _ in rounds)
    )
    baseline = summary(
        "fastapi-ort", *(measurement("fastapi-ort", b, {2: 1, 3: 1}) for _, b in rounds)
    )
    assert round(bench.paired_ratio(modelyard, baseline), 2) == 2.33
    text = bench.report([modelyard, baseline], "validation on")
    assert (
        ">= 2.5x FastAPI+ort: 2.33x (median of the rounds' ratios; 2.63x from the medians)" in text
    )
    assert "-> FAIL" in text
