"""Fingerprints of the data a run used: a content hash, the schema and the row count.

Hashing covers column names, dtypes and values, so the same frame gives the same
digest in any process, and any changed cell changes it. pandas is imported only
when a DataFrame is passed (it is an optional extra).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelyard.errors import ValidationError


@dataclass(frozen=True)
class DataFingerprint:
    """What identifies a dataset: sha256 over schema and values, the schema, the row count."""

    digest: str
    schema: tuple[tuple[str, str], ...]
    rows: int


def _columns(data: Any) -> list[tuple[str, np.ndarray]]:
    module = type(data).__module__
    if module.startswith("pandas") and hasattr(data, "columns"):
        return [(str(name), data[name].to_numpy()) for name in data.columns]
    if module.startswith("pandas") and hasattr(data, "to_numpy"):  # a Series
        return [(str(data.name), data.to_numpy())]
    if isinstance(data, Mapping):
        return [(str(name), np.asarray(values)) for name, values in data.items()]
    array = np.asarray(data)
    if array.ndim == 1:
        return [("0", array)]
    if array.ndim == 2:
        return [(str(i), array[:, i]) for i in range(array.shape[1])]
    raise ValidationError(
        f"cannot fingerprint data of shape {array.shape}: pass a DataFrame, a dict of "
        "columns, or a 1-D/2-D array"
    )


def _column_bytes(values: np.ndarray) -> bytes:
    if values.dtype.kind in "OUS":
        return "\x1f".join(map(str, values.tolist())).encode("utf-8")
    return np.ascontiguousarray(values).tobytes()


def fingerprint(data: Any) -> DataFingerprint:
    """Fingerprint a DataFrame, a dict of columns, or a 1-D/2-D array."""
    columns = _columns(data)
    rows = {len(values) for _, values in columns}
    if len(rows) > 1:
        raise ValidationError(f"columns have different lengths: {sorted(rows)}")
    hasher = hashlib.sha256()
    schema = []
    for name, values in columns:
        dtype = str(values.dtype)
        schema.append((name, dtype))
        hasher.update(f"{name}\x1e{dtype}\x1e{values.shape}\x1e".encode())
        hasher.update(_column_bytes(values))
    return DataFingerprint(hasher.hexdigest(), tuple(schema), rows.pop() if rows else 0)
