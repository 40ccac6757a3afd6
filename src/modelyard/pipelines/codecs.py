"""Step outputs as bytes and back, with no pickle: what the step cache stores.

A value becomes one ``.npz`` archive (numpy, ``allow_pickle=False``): its shape as a
JSON tree in ``tree``, each array leaf as an array. Covered: plain values, numpy
arrays and scalars (string arrays too), lists, tuples, dicts with string keys, pandas
DataFrames (columns kept, a RangeIndex only), and fitted scikit-learn or LightGBM
estimators through skops, whose loader builds only the types it is told to trust: the
ones the archive names, and only from scikit-learn, numpy, scipy and LightGBM. An
output outside this list raises ``NotCacheable`` and the step simply runs every time,
rather than the cache loading code from disk.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from modelyard.errors import ModelyardError

__all__ = ["NotCacheable", "decode", "encode"]

_TRUSTED_MODULES = ("sklearn.", "numpy.", "scipy.", "lightgbm.", "builtins.", "collections.")
_SCALARS = (type(None), bool, int, float, str)


class NotCacheable(ModelyardError):
    """The value has no safe stored form; the step that returned it is not cached."""

    code = "not_cacheable"


def encode(value: Any) -> bytes:
    """``value`` as one npz archive (NotCacheable if some part has no safe form)."""
    arrays: dict[str, np.ndarray] = {}
    tree = _node(value, arrays)
    arrays["tree"] = np.frombuffer(json.dumps(tree).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def decode(data: bytes) -> Any:
    """The value ``encode`` stored (NotCacheable if it no longer loads safely)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    tree = json.loads(arrays.pop("tree").tobytes())
    return _value(tree, arrays)


def _node(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, _SCALARS):
        return {"json": value}
    if isinstance(value, np.generic):
        return {"scalar": _add(arrays, np.asarray(value))}
    if isinstance(value, np.ndarray):
        return _array_node(value, arrays)
    if isinstance(value, list | tuple):
        return {type(value).__name__: [_node(v, arrays) for v in value]}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise NotCacheable("a dict with keys other than strings has no stored form")
        return {"dict": [[k, _node(v, arrays)] for k, v in value.items()]}
    module = type(value).__module__
    if module.startswith("pandas") and hasattr(value, "columns"):
        return _frame_node(value, arrays)
    if module.startswith(("sklearn", "lightgbm")):
        return {"skops": _add(arrays, _skops_bytes(value))}
    raise NotCacheable(f"no safe stored form for a {module}.{type(value).__qualname__}")


def _array_node(array: np.ndarray, arrays: dict[str, np.ndarray]) -> Any:
    if array.dtype.kind != "O":
        return {"array": _add(arrays, array)}
    if not all(isinstance(v, str) for v in array.ravel().tolist()):
        raise NotCacheable("an object array holding other values than strings has no stored form")
    return {"strings": _add(arrays, array.astype(str))}


def _frame_node(frame: Any, arrays: dict[str, np.ndarray]) -> Any:
    import pandas as pd

    if not isinstance(frame.index, pd.RangeIndex) or frame.index.start != 0:
        raise NotCacheable("a DataFrame is stored with a default index only (reset_index())")
    columns = []
    for name in frame.columns:
        if not isinstance(name, str):
            raise NotCacheable(f"DataFrame column {name!r} is not a string")
        columns.append([name, _array_node(frame[name].to_numpy(), arrays)])
    return {"frame": columns}


def _skops_bytes(model: Any) -> np.ndarray:
    import skops.io

    data = bytes(skops.io.dumps(model))
    unsafe = [
        t for t in skops.io.get_untrusted_types(data=data) if not t.startswith(_TRUSTED_MODULES)
    ]
    if unsafe:
        raise NotCacheable(f"the model holds types outside the safe modules: {', '.join(unsafe)}")
    return np.frombuffer(data, dtype=np.uint8)


def _add(arrays: dict[str, np.ndarray], array: np.ndarray) -> str:
    key = f"a{len(arrays)}"
    arrays[key] = array
    return key


def _value(node: Any, arrays: dict[str, np.ndarray]) -> Any:
    kind, content = next(iter(node.items()))
    if kind == "json":
        return content
    if kind == "scalar":
        return arrays[content][()]
    if kind == "array":
        return arrays[content]
    if kind == "strings":
        return arrays[content].astype(object)
    if kind in ("list", "tuple"):
        items = [_value(v, arrays) for v in content]
        return items if kind == "list" else tuple(items)
    if kind == "dict":
        return {k: _value(v, arrays) for k, v in content}
    if kind == "frame":
        import pandas as pd

        return pd.DataFrame({name: _value(v, arrays) for name, v in content})
    if kind == "skops":
        return _skops_model(arrays[content].tobytes())
    raise NotCacheable(f"unknown stored kind {kind!r}")


def _skops_model(data: bytes) -> Any:
    import skops.io

    types = skops.io.get_untrusted_types(data=data)
    unsafe = [t for t in types if not t.startswith(_TRUSTED_MODULES)]
    if unsafe:
        raise NotCacheable(
            f"a stored model names types outside the safe modules: {', '.join(unsafe)}"
        )
    return skops.io.loads(data, trusted=types)
