"""Reference profiles: what the training data and the model's own outputs looked like.

Stored with each version at registration; monitoring compares live traffic to
it. A profile holds summary statistics per feature (quantiles, a histogram,
category frequencies) as JSON, plus a seeded row sample of the joint data
(``.npz`` with fixed zip timestamps, so equal data gives equal bytes), which
multivariate drift tests need and summaries cannot give.

The sample is also what drift tests are calibrated on: their thresholds depend
on how many rows it holds (a 100-row reference tells less than a 5,000-row
one), so the profile says so in ``sample_rows``. Profiles written before that
field lack it; the sample's own length gives the same figure.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

import numpy as np

from modelyard.registry.flavours.base import Outputs

# Enough for the drift tests: with 5,000 reference rows, KS against any window
# resolves a 0.03 gap between the CDFs (n*m/(n+m) ~ 5,000, 30 features), about
# what a 0.1 sd shift makes; and 0.1 sd is the effect floor below which drift
# is not reported anyway.
SAMPLE_ROWS = 5_000
_QUANTILES = np.linspace(0.0, 1.0, 101)
_BINS = 20
_TOP_CATEGORIES = 50


def output_columns(outputs: Outputs) -> dict[str, np.ndarray]:
    """One 1-D column per model output; a binary classifier's probabilities become ``score``."""
    columns: dict[str, np.ndarray] = {}
    for name, values in outputs.items():
        array = np.asarray(values)
        if array.ndim == 2 and name == "probabilities":
            columns["score"] = array[:, 1] if array.shape[1] == 2 else array.max(axis=1)
        elif array.ndim == 1:
            columns[name] = array
        elif array.ndim == 2 and array.shape[1] == 1:
            columns[name] = array[:, 0]
    return columns


def describe_column(values: np.ndarray) -> dict[str, Any]:
    """Summary statistics of one column, numeric or categorical."""
    if values.dtype.kind in "fiub":
        numbers = values.astype(np.float64)
        finite = numbers[np.isfinite(numbers)]
        stats: dict[str, Any] = {
            "kind": "numeric",
            "count": len(numbers),
            "nan_fraction": float(1 - len(finite) / len(numbers)) if len(numbers) else 0.0,
        }
        if len(finite):
            edges = np.unique(np.quantile(finite, np.linspace(0, 1, _BINS + 1)))
            counts = (
                np.histogram(finite, bins=edges)[0] if len(edges) > 1 else np.array([len(finite)])
            )
            stats.update(
                mean=float(finite.mean()),
                std=float(finite.std()),
                min=float(finite.min()),
                max=float(finite.max()),
                quantiles=np.quantile(finite, _QUANTILES).tolist(),
                histogram={"edges": edges.tolist(), "counts": counts.tolist()},
            )
        return stats
    labels, counts = np.unique(values.astype(str), return_counts=True)
    order = np.argsort(-counts, kind="stable")[:_TOP_CATEGORIES]
    return {
        "kind": "categorical",
        "count": len(values),
        "frequencies": {str(labels[i]): float(counts[i] / len(values)) for i in order},
    }


def build_profile(
    features: dict[str, np.ndarray], outputs: Outputs, *, seed: int = 0
) -> tuple[dict[str, Any], bytes]:
    """The profile JSON and the bytes of its row sample, for features and model outputs.

    ``profile["rows"]`` is the number of rows described, ``profile["sample_rows"]``
    the number kept in the sample (at most ``SAMPLE_ROWS``).
    """
    predictions = output_columns(outputs)
    rows = len(next(iter(features.values())))
    profile = {
        "rows": rows,
        "features": {name: describe_column(values) for name, values in features.items()},
        "predictions": {name: describe_column(values) for name, values in predictions.items()},
    }
    rng = np.random.default_rng(seed)
    index = np.sort(rng.choice(rows, size=min(rows, SAMPLE_ROWS), replace=False))
    profile["sample_rows"] = int(index.size)
    sample = {f"feature/{k}": v[index] for k, v in features.items()}
    sample.update({f"prediction/{k}": v[index] for k, v in predictions.items()})
    return profile, save_sample(sample)


def save_sample(columns: dict[str, np.ndarray]) -> bytes:
    """An ``.npz`` of the columns, byte-identical for identical data (no pickle, fixed times)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, values in columns.items():
            array = values.astype(str) if values.dtype.kind == "O" else values
            entry = io.BytesIO()
            np.save(entry, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entry.getvalue())
    return buffer.getvalue()


def load_sample(data: bytes) -> dict[str, dict[str, np.ndarray]]:
    """The row sample as ``{"feature": {...}, "prediction": {...}}``."""
    result: dict[str, dict[str, np.ndarray]] = {"feature": {}, "prediction": {}}
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        for key in archive.files:
            group, _, name = key.partition("/")
            result[group][name] = archive[key]
    return result
