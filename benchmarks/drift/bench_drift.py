"""Decision quality and speed of modelyard's drift detection, beside Evidently's defaults.

    .venv/bin/python benchmarks/drift/bench_drift.py [--runs 100] [--null-runs 1000]
        [--evidently-runs 30] [--classifier-runs 20] [--skip-evidently]

Streams as in shared/BENCHMARKING.md: 33 columns (25 gaussian, 5 lognormal,
3 categorical), a 10,000-row reference, live windows of 1,000 and 200 rows.
Scenarios: no shift; one gaussian feature +0.5 sd (and +0.2 sd); one
category's share doubled; two gaussian features becoming correlated 0.8 with
unchanged N(0, 1) marginals. Which feature moves rotates with the run.

Our half runs here with DriftConfig() defaults (and, on fewer runs, the
domain-classifier variant). Evidently's half (DataDriftPreset(), defaults) runs
in a subprocess with benchmarks/.venvs/evidently/bin/python on the very same
windows, written as .npz files to a temporary folder; create that venv with

    python3 -m venv benchmarks/.venvs/evidently
    benchmarks/.venvs/evidently/bin/pip install 'evidently==0.7.*' 'pandas<3'

Then the 1,000,000-row x 33-column window is timed (ours only, unless
--evidently-big: Evidently took 64 s on it, see BENCHMARKING.md). Raw results go
to benchmarks/drift/out/. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.monitoring import DriftConfig, DriftReport, detect_drift

HERE = Path(__file__).resolve().parent
EVIDENTLY_PYTHON = HERE.parent / ".venvs" / "evidently" / "bin" / "python"

GAUSSIAN = [f"g{i:02d}" for i in range(25)]
LOGNORMAL = [f"l{i}" for i in range(5)]
CATEGORIES: dict[str, tuple[np.ndarray, np.ndarray]] = {
    "c0": (np.array(["a", "b", "c"], dtype=object), np.array([0.5, 0.3, 0.2])),
    "c1": (
        np.array([f"k{i}" for i in range(6)], dtype=object),
        np.array([0.35, 0.25, 0.15, 0.12, 0.08, 0.05]),
    ),
    "c2": (
        np.array([f"z{i:02d}" for i in range(12)], dtype=object),
        (1 / np.arange(1, 13)) / (1 / np.arange(1, 13)).sum(),
    ),
}
SCENARIOS = ["none", "shift05", "shift02", "category", "corr08"]
WINDOWS = [1000, 200]

Window = dict[str, np.ndarray]


def generate(
    rng: np.random.Generator, rows: int, scenario: str = "none", run: int = 0
) -> tuple[Window, tuple[str, ...]]:
    """One window and the feature(s) the scenario moved."""
    data: Window = {name: rng.normal(size=rows) for name in GAUSSIAN}
    data |= {name: rng.lognormal(0.0, 1.0, size=rows) for name in LOGNORMAL}
    shares = {name: p for name, (_, p) in CATEGORIES.items()}
    target: tuple[str, ...] = ()
    if scenario == "category":
        p = shares["c1"].copy()
        p[3] *= 2  # 0.12 -> 0.24, the others scaled down to make room
        p[np.arange(6) != 3] *= (1 - p[3]) / p[np.arange(6) != 3].sum()
        shares["c1"], target = p, ("c1",)
    for name, (values, _) in CATEGORIES.items():
        data[name] = values[rng.choice(values.size, size=rows, p=shares[name])]
    if scenario in ("shift05", "shift02"):
        name = GAUSSIAN[run % len(GAUSSIAN)]
        data[name] = data[name] + (0.5 if scenario == "shift05" else 0.2)
        target = (name,)
    elif scenario == "corr08":
        a, b = GAUSSIAN[2 * (run % 12)], GAUSSIAN[2 * (run % 12) + 1]
        data[b] = 0.8 * data[a] + 0.6 * data[b]
        target = (a, b)
    return data, target


def window_rng(seed: int, rows: int, scenario: str, run: int) -> np.random.Generator:
    return np.random.default_rng([seed, rows, SCENARIOS.index(scenario), run])


def wilson(hits: int, n: int) -> tuple[float, float]:
    """95% Wilson interval for a rate."""
    if n == 0:
        return math.nan, math.nan
    z, p = 1.96, hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(flags: list[bool], interval: bool = False) -> str:
    if not flags:
        return "-"
    hits, n = sum(flags), len(flags)
    text = f"{100 * hits / n:.1f}%"
    if interval:
        low, high = wilson(hits, n)
        text += f" [{100 * low:.1f}-{100 * high:.1f}]"
    return f"{text} (n={n})"


def run_ours(
    reference: Window,
    seed: int,
    runs: dict[str, int],
    config: DriftConfig,
    save: Path | None = None,
    save_runs: int = 0,
) -> dict[str, list[dict[str, Any]]]:
    """Our verdicts per "<rows>_<scenario>"; the first save_runs windows are saved for Evidently."""
    results: dict[str, list[dict[str, Any]]] = {}
    for rows in WINDOWS:
        for scenario, n_runs in runs.items():
            key, records, stacked = f"{rows}_{scenario}", [], []
            for run in range(n_runs):
                live, target = generate(window_rng(seed, rows, scenario, run), rows, scenario, run)
                start = time.perf_counter()
                report = detect_drift(reference, live, config, np.random.default_rng([seed, run]))
                seconds = time.perf_counter() - start
                records.append(summarise(report, target, seconds))
                if run < save_runs:
                    stacked.append(live)
            results[key] = records
            if save is not None and stacked:
                keep = stacked
                save_npz(
                    save / f"windows_{key}.npz",
                    {k: np.stack([w[k] for w in keep]) for k in keep[0]},
                )
            print(f"ours: {key} done ({n_runs} runs)", file=sys.stderr, flush=True)
    return results


def save_npz(path: Path, arrays: Window) -> None:
    """Categorical columns as fixed-width strings, so that no pickling is needed."""
    np.savez(path, **{k: v.astype(str if k in CATEGORIES else float) for k, v in arrays.items()})


def summarise(report: DriftReport, target: tuple[str, ...], seconds: float) -> dict[str, Any]:
    mv = report.multivariate
    return {
        "dataset_drift": report.dataset_drift,
        "drifted": list(report.drifted_features),
        "multivariate": bool(mv is not None and mv.drifted),
        "pair": sorted(mv.features) if mv is not None and mv.drifted else [],
        "target": list(target),
        "seconds": seconds,
    }


def time_big(reference: Window, rows: int, repeats: int, seed: int) -> tuple[list[float], Window]:
    big, _ = generate(np.random.default_rng([seed, rows]), rows)
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        report = detect_drift(reference, big, DriftConfig(), r)
        times.append(time.perf_counter() - start)
        if report.dataset_drift:  # possible, rarely: a no-shift window
            print(f"note: the big window drifted: {report.to_dict()}", file=sys.stderr)
    return times, big


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=100, help="windows per scenario and size")
    parser.add_argument(
        "--null-runs", type=int, default=1000, help="no-shift windows for ours (false alarms)"
    )
    parser.add_argument(
        "--classifier-runs", type=int, default=20, help="windows for the domain-classifier variant"
    )
    parser.add_argument(
        "--evidently-runs",
        type=int,
        default=30,
        help="windows per scenario and size for Evidently (~2-5 s a report here)",
    )
    parser.add_argument("--big-rows", type=int, default=1_000_000)
    parser.add_argument("--big-repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument(
        "--evidently-big", action="store_true", help="also time Evidently on the big window"
    )
    args = parser.parse_args()

    reference, _ = generate(np.random.default_rng([args.seed, 10_000]), 10_000)
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench_drift_") as tmp:
        data = None if args.skip_evidently else Path(tmp)
        if data is not None:
            save_npz(data / "reference.npz", reference)
        runs = {s: args.runs for s in SCENARIOS} | {"none": max(args.runs, args.null_runs)}
        ours = run_ours(reference, args.seed, runs, DriftConfig(), data, args.evidently_runs)
        classifier = run_ours(
            reference,
            args.seed,
            {"none": args.classifier_runs, "corr08": args.classifier_runs},
            DriftConfig(multivariate="domain_classifier"),
        )
        big_times, big = time_big(reference, args.big_rows, args.big_repeats, args.seed)
        evidently: dict[str, list[dict[str, Any]]] = {}
        if data is not None:
            command = [str(EVIDENTLY_PYTHON), str(HERE / "evidently_side.py"), str(data)]
            if args.evidently_big:
                save_npz(data / "big.npz", big)
                command.append("--big")
            subprocess.run(command, check=True)
            evidently = json.loads((data / "evidently.json").read_text())
            for key, records in evidently.items():
                for i, record in enumerate(records):  # the same windows, in the same order
                    record["target"] = ours[key][i]["target"] if key in ours else []
    (out / "results.json").write_text(
        json.dumps(
            {
                "ours": ours,
                "classifier": classifier,
                "big_seconds": big_times,
                "evidently": evidently,
                "args": vars(args),
            }
        )
    )
    print_table(ours, classifier, evidently, big_times, args)


def verdict(r: dict[str, Any]) -> bool:
    return bool(r["dataset_drift"])


def any_column(r: dict[str, Any]) -> bool:
    return bool(r["drifted"])


def only_target(r: dict[str, Any]) -> bool:
    return bool(r["drifted"] == r["target"])


def first_target(r: dict[str, Any]) -> bool:
    return bool(r["drifted"][:1] == r["target"])


def pair_named(r: dict[str, Any]) -> bool:
    return bool(r["pair"] == sorted(r["target"]))


def print_table(
    ours: dict[str, list[dict[str, Any]]],
    classifier: dict[str, list[dict[str, Any]]],
    evidently: dict[str, list[dict[str, Any]]],
    big_times: list[float],
    args: argparse.Namespace,
) -> None:
    def column(
        results: dict[str, list[dict[str, Any]]],
        key: str,
        test: Callable[[dict[str, Any]], bool],
        interval: bool = False,
    ) -> str:
        return rate([test(r) for r in results.get(key, [])], interval)

    rows: list[tuple[str, str, str, str, str]] = []
    for size in WINDOWS:
        k = f"{size}_none"
        rows.append(
            (
                f"no shift, {size:,}-row windows: false alarms",
                "<= 1%",
                column(ours, k, verdict, True),
                column(evidently, k, verdict),
                column(evidently, k, any_column),
            )
        )
    for size in WINDOWS:
        k = f"{size}_shift05"
        rows.append(
            (
                f"+0.5 sd on one feature, {size:,} rows: detected",
                ">= 99%" if size == 1000 else "",
                column(ours, k, verdict),
                column(evidently, k, verdict),
                column(evidently, k, any_column),
            )
        )
        rows.append(
            (
                "  ... the shifted feature named first / and only it",
                ">= 99%" if size == 1000 else "",
                column(ours, k, first_target) + " / " + column(ours, k, only_target),
                "-",
                "- / " + column(evidently, k, only_target),
            )
        )
    for size in WINDOWS:
        k = f"{size}_shift02"
        rows.append(
            (
                f"+0.2 sd on one feature, {size:,} rows: detected / only it",
                "",
                column(ours, k, verdict) + " / " + column(ours, k, only_target),
                column(evidently, k, verdict),
                column(evidently, k, any_column) + " / " + column(evidently, k, only_target),
            )
        )
    for size in WINDOWS:
        k = f"{size}_category"
        rows.append(
            (
                f"one category's share doubled, {size:,} rows: detected / only it",
                "",
                column(ours, k, verdict) + " / " + column(ours, k, only_target),
                column(evidently, k, verdict),
                column(evidently, k, any_column) + " / " + column(evidently, k, only_target),
            )
        )
    for size in WINDOWS:
        k = f"{size}_corr08"
        rows.append(
            (
                f"correlation 0 -> 0.8, marginals unchanged, {size:,} rows: detected / pair named",
                ">= 90%" if size == 1000 else "",
                column(ours, k, verdict) + " / " + column(ours, k, pair_named),
                column(evidently, k, verdict),
                column(evidently, k, any_column),
            )
        )
    for size in WINDOWS:
        rows.append(
            (
                f"domain-classifier variant, {size:,} rows: false alarms / correlation detected",
                "",
                column(classifier, f"{size}_none", verdict)
                + " / "
                + column(classifier, f"{size}_corr08", verdict),
                "",
                "",
            )
        )
    for size in WINDOWS:
        ours_s = statistics.median(r["seconds"] for r in ours[f"{size}_none"])
        ev = evidently.get(f"{size}_none", [])
        ev_s = f"{statistics.median(r['seconds'] for r in ev):.2f} s" if ev else "-"
        rows.append(
            (f"median time per {size:,}-row window", "", f"{1000 * ours_s:.0f} ms", ev_s, "")
        )
    ev_big = evidently.get("big")
    rows.append(
        (
            f"{args.big_rows:,} rows x 33 columns, median of {len(big_times)}",
            "< 5 s",
            f"{statistics.median(big_times):.2f} s "
            f"(min {min(big_times):.2f}, max {max(big_times):.2f})",
            f"{ev_big[0]['seconds']:.1f} s" if ev_big else "64 s (BENCHMARKING.md, not rerun)",
            "",
        )
    )
    header = ["measure", "target", "modelyard", "Evidently dataset verdict", "Evidently any column"]
    print("| " + " | ".join(header) + " |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
