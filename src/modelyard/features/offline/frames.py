"""Entity frames in and out: pandas, polars or Arrow, given back as the same kind.

The user's frame never goes through DuckDB: only its key and timestamp columns do
(as a narrow Arrow table), and the feature columns computed are attached to the
frame as it came, so its own columns, their types, its index and its row order are
untouched. pandas, polars and pyarrow are optional: each is imported only when a
frame of its kind arrives (pyarrow always, DuckDB hands results over in Arrow), and
a missing one is a ``ConfigurationError`` naming the extra to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from modelyard.errors import ConfigurationError, ValidationError

FrameKind = Literal["pandas", "polars", "arrow"]

_SECONDS_PER_UNIT = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}


def require(module: str) -> Any:
    """Import a library when a frame of its kind arrives (they are slow to import), or say
    how to install it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        command = (
            "pip install 'modelyard[pandas]'" if module == "pandas" else f"pip install {module}"
        )
        raise ConfigurationError(f"this needs {module}: {command}") from error


def frame_kind(frame: object) -> FrameKind:
    """Which kind of frame ``frame`` is, without importing any frame library."""
    module = type(frame).__module__.split(".")[0]
    name = type(frame).__name__
    if module == "pandas" and name == "DataFrame":
        return "pandas"
    if module == "polars" and name == "DataFrame":
        return "polars"
    if module == "pyarrow" and name == "Table":
        return "arrow"
    raise ValidationError(
        "the entity frame must be a pandas DataFrame, a polars DataFrame or a pyarrow "
        f"Table, got {type(frame).__module__}.{name}"
    )


def columns_of(frame: Any, kind: FrameKind) -> list[str]:
    if kind == "arrow":
        return [str(c) for c in frame.column_names]
    return [str(c) for c in frame.columns]


def narrow(frame: Any, kind: FrameKind, columns: Sequence[str]) -> Any:
    """``columns`` of ``frame`` as a ``pyarrow.Table`` (dictionary columns decoded)."""
    pa = require("pyarrow")
    if kind == "pandas":
        try:
            table = pa.Table.from_pandas(frame[list(columns)], preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            raise ValidationError(f"the entity frame's columns {list(columns)}: {error}") from error
    elif kind == "polars":
        table = frame.select(list(columns)).to_arrow()
    else:
        table = frame.select(list(columns))
    decoded = []
    for column in table.columns:
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        decoded.append(column)
    return pa.table(decoded, names=list(columns))


def epoch_seconds(column: Any, name: str) -> Any:
    """An Arrow column of times as float64 epoch seconds (null where missing): timestamps of
    any unit (naive ones are UTC), dates, or numbers taken as epoch seconds."""
    pa = require("pyarrow")
    kind_of = column.type
    valid = np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_timestamp(kind_of):
        raw = column.cast(pa.int64()).to_numpy(zero_copy_only=False)
        values = np.asarray(raw, dtype=np.float64) / _SECONDS_PER_UNIT[kind_of.unit]
    elif pa.types.is_date(kind_of):
        days = column.cast(pa.date32()).cast(pa.int32()).to_numpy(zero_copy_only=False)
        values = np.asarray(days, dtype=np.float64) * 86400.0
    elif pa.types.is_integer(kind_of) or pa.types.is_floating(kind_of):
        values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
    elif pa.types.is_decimal(kind_of):
        values = np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64)
    else:
        raise ValidationError(
            f"the entity frame's timestamp column {name!r} must hold times (datetimes, dates "
            f"or epoch seconds), got {kind_of}"
        )
    values = values + 0.0
    valid &= ~np.isnan(values)
    return pa.array(values, type=pa.float64(), mask=~valid)


def attach(frame: Any, kind: FrameKind, features: Any) -> Any:
    """``frame`` with the columns of the Arrow table ``features`` added, as ``kind``."""
    if kind == "arrow":
        for name, column in zip(features.column_names, features.columns, strict=True):
            frame = frame.append_column(name, column)
        return frame
    if kind == "polars":
        pl = require("polars")
        added = pl.from_arrow(features)
        return frame.with_columns(added.get_columns()) if features.num_columns else frame
    pa = require("pyarrow")
    pd = require("pandas")
    # Integers and booleans as pandas' nullable types, so a missing value stays missing
    # instead of turning the column to float; aligned on the frame's own index.
    nullable = {pa.types.is_integer: pd.Int64Dtype(), pa.types.is_boolean: pd.BooleanDtype()}

    def mapper(arrow_type: Any) -> Any:
        return next((dtype for test, dtype in nullable.items() if test(arrow_type)), None)

    added = features.to_pandas(types_mapper=mapper).set_axis(frame.index)
    return pd.concat([frame, added], axis=1)
