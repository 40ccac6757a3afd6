"""Evidently's half of bench_drift.py; runs in benchmarks/.venvs/evidently.

    python evidently_side.py DATA_DIR

Reads reference.npz and windows_<rows>_<scenario>.npz (each column stacked as
runs x rows) from DATA_DIR, runs Evidently's default DataDriftPreset on every
window and writes DATA_DIR/evidently.json: per window the dataset verdict,
the drifted columns and the seconds the report took. Optionally big.npz (one
window) with --big.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset


def frame(arrays: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame(
        {k: (v.astype(object) if v.dtype.kind == "U" else v) for k, v in arrays.items()}
    )


def verdict(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, object]:
    start = time.perf_counter()
    result = Report([DataDriftPreset()]).run(current, reference).dict()
    seconds = time.perf_counter() - start
    drifted, share = [], None
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            value, threshold = metric["value"], config["threshold"]
            # p-value methods drift below the threshold, distances at or above it
            hit = value < threshold if "p_value" in config["method"] else value >= threshold
            if hit:
                drifted.append(config["column"])
        elif config["type"].endswith("DriftedColumnsCount"):
            share = metric["value"]["share"]
            count = metric["value"]["count"]
    assert share is not None
    assert int(count) == len(drifted), (count, drifted)  # our reading agrees with Evidently's
    return {"dataset_drift": share >= 0.5, "drifted": drifted, "seconds": seconds}


def main() -> None:
    data = Path(sys.argv[1])
    with np.load(data / "reference.npz") as npz:
        reference = frame(dict(npz))
    results: dict[str, list[dict[str, object]]] = {}
    for path in sorted(data.glob("windows_*.npz")):
        with np.load(path) as npz:
            stacked = dict(npz)
        runs = next(iter(stacked.values())).shape[0]
        key = path.stem.removeprefix("windows_")
        results[key] = [
            verdict(reference, frame({k: v[r] for k, v in stacked.items()})) for r in range(runs)
        ]
        print(f"evidently: {key} done ({runs} runs)", file=sys.stderr, flush=True)
    if "--big" in sys.argv:
        with np.load(data / "big.npz") as npz:
            big = frame(dict(npz))
        results["big"] = [verdict(reference, big)]
    (data / "evidently.json").write_text(json.dumps(results))


if __name__ == "__main__":
    main()
