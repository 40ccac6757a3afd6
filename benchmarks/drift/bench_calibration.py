"""False alarms and power of drift detection at every window and reference size.

    .venv/bin/python benchmarks/drift/bench_calibration.py [--windows 200] [--power-windows 100]
        [--floor-windows 50] [--workers 2] [--datasets breast_cancer,wine,...] [--seed 0]
    .venv/bin/python benchmarks/drift/bench_calibration.py --tables-only

Real data: scikit-learn's bundled data sets (breast_cancer, wine, diabetes, iris,
digits; loaded from the package, no download). For each window, a reference and a
live window are drawn independently, with replacement, from the same rows: the
same distribution, so every alarm is false. Generated data: the 33 columns of
bench_drift.py (25 gaussian, 5 lognormal, 3 categorical), reference and window
drawn afresh. References of 100, 300, 1,000 and 5,000 rows (the registry keeps
at most 5,000), windows of 200, 1,000, 10,000 and 100,000 rows, ``--windows``
windows per cell, each with a new reference. ``DriftConfig()`` defaults.

Besides the verdict, each report gives, after the fact: what the significance
tests alone would have said (no effect floors), and what the previous rule's
per-feature part said (KS / chi-square with Bonferroni up to 1,000 rows; above
that Wasserstein >= 0.1 reference sd, Jensen-Shannon >= 0.1, which are the
effect sizes the report carries; for a reference column that happens to be
constant the Wasserstein scale now differs, so there it is approximate).

Power: 1,000-row windows with one numeric column shifted by +0.5 of its
standard deviation (over the data set's rows), the column rotating with the
run; detected, named first in drifted_features, and the only one named.
Floor: generated data, 5,000-row reference, 100,000-row windows, one gaussian
shifted by 0.05, 0.1 and 0.2 sd: flagged by the rule and by the test alone.

BLAS is held to one thread per process (a 2-core machine with two workers).
Each data set's counts go to benchmarks/drift/out/calibration_<name>.json; the
tables are printed from those files, so a long run can be done in parts
(``--datasets digits``, then ``--datasets generated``, ...) and the parts
printed together with ``--tables-only``. The whole run took about 20 minutes
with two workers on the shared 2-core machine under load (5-8 minutes a part),
most of it in the 100,000-row windows; ``--windows 100`` halves it.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from bench_drift import GAUSSIAN, generate, wilson  # noqa: E402
from sklearn import datasets  # noqa: E402

from modelyard.monitoring import DriftConfig, DriftReport, detect_drift  # noqa: E402

HERE = Path(__file__).resolve().parent
REFERENCES = [100, 300, 1000, 5000]
WINDOWS = [200, 1000, 10_000, 100_000]
LOADERS: dict[str, Callable[[], Any]] = {
    "breast_cancer": datasets.load_breast_cancer,
    "wine": datasets.load_wine,
    "diabetes": datasets.load_diabetes,
    "iris": datasets.load_iris,
    "digits": datasets.load_digits,
}
NAMES = [*LOADERS, "generated"]
FLOOR_SHIFTS = [0.05, 0.1, 0.2]
CONFIG = DriftConfig()
Window = dict[str, np.ndarray]


@dataclass(frozen=True)
class Data:
    """A sampler of references and windows for one data set."""

    name: str
    columns: dict[str, np.ndarray]  # the data set's columns; empty for generated data

    def draw(self, rng: np.random.Generator, size: int) -> Window:
        """Rows drawn with replacement (real data), or generated afresh."""
        if not self.columns:
            return generate(rng, size)[0]
        rows = rng.integers(0, len(next(iter(self.columns.values()))), size)
        return {name: values[rows] for name, values in self.columns.items()}

    def numeric(self) -> list[str]:
        """The columns a shift can move (constant ones cannot: digits' corner pixels)."""
        if not self.columns:
            return list(GAUSSIAN)
        return [name for name, values in self.columns.items() if values.std() > 0]

    def sd(self, column: str) -> float:
        return float(self.columns[column].std()) if self.columns else 1.0


def load(name: str) -> Data:
    if name == "generated":
        return Data(name, {})
    bunch = LOADERS[name]()
    data = np.asarray(bunch.data, dtype=np.float64)
    names = [str(c) for c in bunch.feature_names]
    return Data(name, {c: np.ascontiguousarray(data[:, i]) for i, c in enumerate(names)})


def tests_alone(report: DriftReport) -> bool:
    """The verdict without effect floors: any p-value under its threshold."""
    features = any(f.p_value is not None and f.p_value <= f.threshold for f in report.features)
    mv = report.multivariate
    return features or (mv is not None and mv.p_value <= mv.threshold)


def previous_rule(report: DriftReport) -> bool:
    """The per-feature part of the rule before this change, from the same figures."""
    if report.n_live <= 1000:
        return any(f.p_value is not None and f.p_value <= f.threshold for f in report.features)
    return any((f.effect_size or 0.0) >= 0.1 for f in report.features)


def null_cell(task: tuple[str, int, int, int, int]) -> dict[str, Any]:
    """False alarms in one (data set, reference size, window size) cell."""
    name, ref_rows, live_rows, runs, seed = task
    data = load(name)
    counts = dict(alarms=0, features=0, multivariate=0, tests_alone=0, previous=0)
    seconds = []
    for run in range(runs):
        rng = np.random.default_rng([seed, NAMES.index(name), ref_rows, live_rows, run])
        reference, live = data.draw(rng, ref_rows), data.draw(rng, live_rows)
        start = time.perf_counter()
        report = detect_drift(reference, live, CONFIG, rng)
        seconds.append(time.perf_counter() - start)
        mv = report.multivariate
        counts["alarms"] += report.dataset_drift
        counts["features"] += bool(report.drifted_features)
        counts["multivariate"] += bool(mv is not None and mv.drifted)
        counts["tests_alone"] += tests_alone(report)
        counts["previous"] += previous_rule(report)
    return dict(
        data=name, reference=ref_rows, window=live_rows, runs=runs, **counts,
        median_s=statistics.median(seconds),
    )  # fmt: skip


def power_cell(task: tuple[str, int, int, int]) -> dict[str, Any]:
    """+0.5 sd in one column of 1,000-row windows: detected, named first, named alone."""
    name, ref_rows, runs, seed = task
    data = load(name)
    numeric = data.numeric()
    detected = first = only = 0
    for run in range(runs):
        rng = np.random.default_rng([seed, NAMES.index(name), ref_rows, 1, run])
        reference, live = data.draw(rng, ref_rows), data.draw(rng, 1000)
        column = numeric[run % len(numeric)]
        live[column] = live[column] + 0.5 * data.sd(column)
        report = detect_drift(reference, live, CONFIG, rng)
        detected += report.dataset_drift
        first += report.drifted_features[:1] == (column,)
        only += report.drifted_features == (column,)
    return dict(data=name, reference=ref_rows, runs=runs, detected=detected, first=first, only=only)


def floor_cell(task: tuple[float, int, int]) -> dict[str, Any]:
    """Generated data, 5,000-row reference, 100,000-row windows, one gaussian shifted."""
    shift, runs, seed = task
    data = load("generated")
    flagged = alone = 0
    effects = []
    for run in range(runs):
        rng = np.random.default_rng([seed, 99, int(shift * 1000), run])
        reference, live = data.draw(rng, 5000), data.draw(rng, 100_000)
        column = GAUSSIAN[run % len(GAUSSIAN)]
        live[column] = live[column] + shift
        report = detect_drift(reference, live, CONFIG, rng)
        verdict = next(f for f in report.features if f.name == column)
        flagged += verdict.drifted
        alone += verdict.p_value is not None and verdict.p_value <= verdict.threshold
        effects.append(verdict.effect_size or 0.0)
    return dict(
        shift=shift, runs=runs, flagged=flagged, tests_alone=alone,
        median_effect=statistics.median(effects),
    )  # fmt: skip


def pct(hits: int, n: int, interval: bool = False) -> str:
    text = f"{100 * hits / n:.1f}%"
    if interval:
        low, high = wilson(hits, n)
        text += f" [{100 * low:.2f}-{100 * high:.2f}]"
    return text


def print_tables(
    null: list[dict[str, Any]], power: list[dict[str, Any]], floor: list[dict[str, Any]]
) -> None:
    names = list(dict.fromkeys(r["data"] for r in null))
    cell = {(r["data"], r["reference"], r["window"]): r for r in null}
    print("False alarms per window (dataset verdict), DriftConfig() defaults:\n")
    print("| data | reference rows | " + " | ".join(f"{w:,}-row windows" for w in WINDOWS) + " |")
    print("|---|---|" + "---|" * len(WINDOWS))
    for name in names:
        for ref in REFERENCES:
            parts = []
            for w in WINDOWS:
                r = cell.get((name, ref, w))
                parts.append("-" if r is None else f"{r['alarms']}/{r['runs']}")
            print(f"| {name} | {ref:,} | " + " | ".join(parts) + " |")

    print("\nPooled over data sets and reference sizes (95% Wilson intervals):\n")
    print(
        "| window rows | windows | false alarms | of which per-feature / multivariate "
        "| tests alone, no floors | previous rule, per-feature part | median time |"
    )
    print("|---|---|---|---|---|---|---|")
    for w in WINDOWS:
        rows = [r for r in null if r["window"] == w]
        n = sum(r["runs"] for r in rows)
        if not n:
            continue

        def total(key: str, rows: list[dict[str, Any]] = rows) -> int:
            return sum(int(r[key]) for r in rows)

        median = statistics.median(r["median_s"] for r in rows)
        print(
            f"| {w:,} | {n} | {pct(total('alarms'), n, True)} "
            f"| {total('features')} / {total('multivariate')} "
            f"| {pct(total('tests_alone'), n, True)} | {pct(total('previous'), n, True)} "
            f"| {1000 * median:.0f} ms |"
        )

    print(
        "\nBy reference size, pooled over data sets: false alarms now / under the previous rule's"
        " per-feature part:\n"
    )
    print("| reference rows | " + " | ".join(f"{w:,}-row windows" for w in WINDOWS) + " |")
    print("|---|" + "---|" * len(WINDOWS))
    for ref in REFERENCES:
        parts = []
        for w in WINDOWS:
            rows = [r for r in null if r["reference"] == ref and r["window"] == w]
            n = sum(r["runs"] for r in rows)
            alarms, previous = (sum(int(r[k]) for r in rows) for k in ("alarms", "previous"))
            parts.append(f"{pct(alarms, n)} / {pct(previous, n)}" if n else "-")
        print(f"| {ref:,} | " + " | ".join(parts) + " |")

    print("\nWorst cells (highest false-alarm count, new rule):\n")
    worst = sorted(null, key=lambda r: -r["alarms"])[:5]
    for r in worst:
        print(
            f"- {r['data']}, reference {r['reference']:,}, window {r['window']:,}: "
            f"{r['alarms']}/{r['runs']} ({pct(r['alarms'], r['runs'], True)})"
        )

    if power:
        print("\n+0.5 sd in one column, 1,000-row windows: detected / named first / named alone:\n")
        print("| data | " + " | ".join(f"reference {ref:,}" for ref in REFERENCES) + " |")
        print("|---|" + "---|" * len(REFERENCES))
        by = {(r["data"], r["reference"]): r for r in power}
        for name in dict.fromkeys(r["data"] for r in power):
            parts = []
            for ref in REFERENCES:
                r = by.get((name, ref))
                parts.append(
                    "-"
                    if r is None
                    else f"{pct(r['detected'], r['runs'])} / {pct(r['first'], r['runs'])}"
                    f" / {pct(r['only'], r['runs'])}"
                )
            print(f"| {name} | " + " | ".join(parts) + " |")

    if floor:
        print("\nEffect floor: generated data, 5,000-row reference, 100,000-row windows:\n")
        print("| shift of one gaussian | windows | flagged (rule) | tests alone | median W (sd) |")
        print("|---|---|---|---|---|")
        for r in floor:
            print(
                f"| +{r['shift']} sd | {r['runs']} | {pct(r['flagged'], r['runs'])} "
                f"| {pct(r['tests_alone'], r['runs'])} | {r['median_effect']:.3f} |"
            )


def run(names: list[str], args: argparse.Namespace, out: Path) -> None:
    """Run the cells of ``names`` and save each data set's counts to out/calibration_<name>.json."""
    began = time.perf_counter()
    # biggest cells first, so that the pool does not end on one long straggler
    null_tasks = [
        (name, ref, w, args.windows, args.seed)
        for w in sorted(WINDOWS, reverse=True)
        for name in names
        for ref in REFERENCES
    ]
    power_tasks = [
        (name, ref, args.power_windows, args.seed) for name in names for ref in REFERENCES
    ]
    floor_tasks = [(shift, args.floor_windows, args.seed) for shift in FLOOR_SHIFTS]
    with_floor = "generated" in names and args.floor_windows > 0
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        null_jobs = [pool.submit(null_cell, t) for t in null_tasks]
        floor_jobs = [pool.submit(floor_cell, t) for t in floor_tasks] if with_floor else []
        power_jobs = [pool.submit(power_cell, t) for t in power_tasks if args.power_windows]
        null = []
        for job in null_jobs:
            null.append(job.result())
            r = null[-1]
            print(
                f"{r['data']} ref {r['reference']} window {r['window']}: "
                f"{r['alarms']}/{r['runs']} alarms ({time.perf_counter() - began:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
        floor = [job.result() for job in floor_jobs]
        power = [job.result() for job in power_jobs]
    elapsed = time.perf_counter() - began
    print(f"{', '.join(names)}: {elapsed:.0f} s with {args.workers} worker(s)", file=sys.stderr)
    for name in names:
        part = {
            "null": [r for r in null if r["data"] == name],
            "power": [r for r in power if r["data"] == name],
            "floor": floor if name == "generated" else [],
            "args": vars(args),
            "run_seconds": elapsed,
        }
        (out / f"calibration_{name}.json").write_text(json.dumps(part, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--windows", type=int, default=200, help="no-shift windows per cell")
    parser.add_argument("--power-windows", type=int, default=100, help="shifted windows per cell")
    parser.add_argument("--floor-windows", type=int, default=50, help="windows per floor shift")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--datasets", default=",".join(NAMES), help="comma-separated; run in parts if slow"
    )
    parser.add_argument(
        "--tables-only",
        action="store_true",
        help="print the tables of the parts saved in out/ (every data set found), run nothing",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    names = [n for n in args.datasets.split(",") if n]
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        parser.error(f"unknown data set(s) {', '.join(unknown)}; known: {', '.join(NAMES)}")

    out = HERE / "out"
    out.mkdir(exist_ok=True)
    if not args.tables_only:
        run(names, args, out)
    null: list[dict[str, Any]] = []
    power: list[dict[str, Any]] = []
    floor: list[dict[str, Any]] = []
    seconds = 0.0
    for name in NAMES if args.tables_only else names:
        path = out / f"calibration_{name}.json"
        if not path.exists():
            continue
        part = json.loads(path.read_text())
        null += part["null"]
        power += part["power"]
        floor += part["floor"]
        seconds += part["run_seconds"] / len(part["args"]["datasets"].split(","))
    print_tables(null, power, floor)
    print(f"\nAbout {seconds:.0f} s of run time for these data sets (a run's time shared out).")


if __name__ == "__main__":
    main()
