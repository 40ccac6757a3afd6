"""What a value going into a step is, as a digest: the content, never the name.

``digest_of`` covers what pipelines pass around: numpy arrays, columns (a dict of
arrays), pandas and Arrow frames (through ``tracking.fingerprint``, so a dataset gets
the same digest here as in a run's lineage), files and folders (their bytes), plain
values (canonical JSON), dataclasses (field by field), and lists, tuples and dicts of
these. A value an earlier step returned is known by the digest recorded when it came
out (``Produced``), so a fitted model needs no format of its own to key the next step.
Anything else is refused with the argument's name: guessing would risk a stale hit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.errors import ValidationError
from modelyard.tracking.fingerprint import fingerprint

__all__ = ["Produced", "digest_of"]

_SCALARS = (type(None), bool, int, float, str)
_CHUNK = 1 << 20


class Produced:
    """The values earlier steps of one run returned, with their digests, by identity."""

    def __init__(self) -> None:
        # The value is kept alongside so that its id() cannot be reused meanwhile.
        self._by_id: dict[int, tuple[Any, str]] = {}

    def add(self, value: Any, digest: str) -> None:
        if not isinstance(value, _SCALARS):
            self._by_id[id(value)] = (value, digest)

    def get(self, value: Any) -> str | None:
        found = self._by_id.get(id(value))
        return found[1] if found is not None and found[0] is value else None


def digest_of(value: Any, produced: Produced | None = None, *, what: str = "argument") -> str:
    """The digest of ``value``'s content; ValidationError naming ``what`` if it has none."""
    if produced is not None:
        known = produced.get(value)
        if known is not None:
            return known
    found = _digest(value, produced, what)
    if found is None:
        raise ValidationError(
            f"{what} of type {type(value).__name__} cannot be fingerprinted: pass data "
            "(arrays, columns, a DataFrame), a Path, plain values, or what an earlier "
            "step returned; or mark the step cache=False"
        )
    return found


def _digest(value: Any, produced: Produced | None, what: str) -> str | None:
    if isinstance(value, _SCALARS):
        return _hash("json", json.dumps(value))
    if isinstance(value, np.generic):
        return _hash("json", json.dumps(value.item()))
    if isinstance(value, Path):
        return _path_digest(value, what)
    if isinstance(value, np.ndarray):
        return _array_digest(value)
    module = type(value).__module__
    if module.startswith("pandas") and hasattr(value, "to_numpy"):
        return _hash("frame", fingerprint(value).digest)
    if module.startswith("pyarrow") and hasattr(value, "column_names"):
        columns = {name: value.column(name).to_numpy() for name in value.column_names}
        return _hash("frame", fingerprint(columns).digest)
    if isinstance(value, Mapping):
        parts = []
        for key in sorted(value, key=str):
            parts.append(f"{key!s}={digest_of(value[key], produced, what=f'{what}[{key!r}]')}")
        return _hash("dict", ";".join(parts))
    if isinstance(value, list | tuple):
        items = [digest_of(v, produced, what=f"{what}[{i}]") for i, v in enumerate(value)]
        return _hash(type(value).__name__, ";".join(items))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        parts = [type(value).__qualname__]
        for f in dataclasses.fields(value):
            parts.append(
                f"{f.name}={digest_of(getattr(value, f.name), produced, what=f'{what}.{f.name}')}"
            )
        return _hash("dataclass", ";".join(parts))
    return None


def _array_digest(array: np.ndarray) -> str:
    hasher = hashlib.sha256(f"array\x1e{array.dtype.str}\x1e{array.shape}\x1e".encode())
    if array.dtype.kind == "O":
        hasher.update(json.dumps([str(v) for v in array.ravel().tolist()]).encode())
    else:
        hasher.update(np.ascontiguousarray(array).tobytes())
    return hasher.hexdigest()


def _path_digest(path: Path, what: str) -> str:
    if path.is_file():
        hasher = hashlib.sha256(b"file\x1e")
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                hasher.update(chunk)
        return hasher.hexdigest()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        parts = [f"{p.relative_to(path).as_posix()}={_path_digest(p, what)}" for p in files]
        return _hash("folder", ";".join(parts))
    raise ValidationError(f"{what}: {path} does not exist")


def _hash(kind: str, text: str) -> str:
    return hashlib.sha256(f"{kind}\x1e{text}".encode()).hexdigest()
