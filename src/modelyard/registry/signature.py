"""Model signatures: the named, typed inputs and outputs a version accepts and returns.

A signature is inferred from an input example at registration and enforced
when a batch arrives. Two layouts cover tabular models:

* ``matrix``: the model takes one 2-D array whose columns are the named
  features, all of one numeric dtype (most scikit-learn/LightGBM models);
* ``columns``: the model takes one array per named input (mixed types, strings).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from modelyard.errors import ValidationError
from modelyard.registry.imaging import ImageSpec

Layout = Literal["matrix", "columns"]
Batch = Mapping[str, Any] | np.ndarray

_KINDS = {
    "f": "number",
    "i": "integer",
    "u": "integer",
    "b": "boolean",
    "O": "string",
    "U": "string",
}


@dataclass(frozen=True)
class FieldSpec:
    """One named input or output: its dtype, per-row shape and allowed values."""

    name: str
    dtype: str
    shape: tuple[int, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    allow_nan: bool = False
    categories: tuple[str, ...] | None = None

    @property
    def kind(self) -> str:
        """'number', 'integer', 'boolean' or 'string': what a JSON value must be."""
        return _KINDS.get(np.dtype(self.dtype).kind, "string")


@dataclass(frozen=True)
class Signature:
    """Inputs and outputs of a model version."""

    inputs: tuple[FieldSpec, ...]
    outputs: tuple[FieldSpec, ...] = field(default_factory=tuple)
    layout: Layout = "matrix"
    # An image model's inputs are its prepared pixels (``registry.imaging``), one field
    # each; ``image`` says how an encoded image becomes them.
    image: ImageSpec | None = None

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.inputs]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        def spec(d: Mapping[str, Any]) -> FieldSpec:
            cats = d.get("categories")
            return FieldSpec(
                name=d["name"],
                dtype=d["dtype"],
                shape=tuple(d.get("shape", ())),
                minimum=d.get("minimum"),
                maximum=d.get("maximum"),
                allow_nan=bool(d.get("allow_nan", False)),
                categories=tuple(cats) if cats is not None else None,
            )

        return cls(
            inputs=tuple(spec(d) for d in data["inputs"]),
            outputs=tuple(spec(d) for d in data.get("outputs", ())),
            layout=data.get("layout", "matrix"),
            image=ImageSpec.from_dict(data["image"]) if data.get("image") else None,
        )

    def same_inputs(self, other: Signature) -> bool:
        """Whether ``other`` accepts the same fields with the same types (ranges may differ)."""
        mine = [(s.name, s.dtype, s.shape) for s in self.inputs]
        theirs = [(s.name, s.dtype, s.shape) for s in other.inputs]
        return self.layout == other.layout and mine == theirs


def example_columns(example: Any, feature_names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Turn a DataFrame, a dict of columns or a 2-D array into named 1-D columns."""
    if type(example).__module__.startswith("pandas") and hasattr(example, "columns"):
        return {str(name): example[name].to_numpy() for name in example.columns}
    if isinstance(example, Mapping):
        return {str(name): np.asarray(values) for name, values in example.items()}
    array = np.asarray(example)
    if array.ndim != 2:
        raise ValidationError(
            f"an input example must be 2-D (rows x features), got shape {array.shape}"
        )
    names = feature_names or [f"f{i}" for i in range(array.shape[1])]
    if len(names) != array.shape[1]:
        raise ValidationError(
            f"{len(names)} feature names given for {array.shape[1]} columns in the example"
        )
    return {name: array[:, i] for i, name in enumerate(names)}


def infer_signature(
    example: Any,
    outputs: Mapping[str, np.ndarray] | None = None,
    feature_names: list[str] | None = None,
) -> Signature:
    """Infer names, dtypes and observed ranges from an example (and the model's outputs)."""
    columns = example_columns(example, feature_names)
    if not columns:
        raise ValidationError("an input example must have at least one column")
    specs = []
    for name, values in columns.items():
        if values.ndim != 1:
            raise ValidationError(f"column {name!r} must be 1-D, got shape {values.shape}")
        if values.dtype.kind in "fiub":
            finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
            specs.append(
                FieldSpec(
                    name=name,
                    dtype=str(values.dtype),
                    allow_nan=bool(values.dtype.kind == "f" and len(finite) < len(values)),
                )
            )
        else:
            specs.append(FieldSpec(name=name, dtype="object"))
    kinds = {np.dtype(s.dtype).kind for s in specs}
    numeric_matrix = kinds <= {"f", "i", "u", "b"} and len({s.dtype for s in specs}) == 1
    layout: Layout = "matrix" if numeric_matrix else "columns"
    out_specs = tuple(
        FieldSpec(name=name, dtype=str(np.asarray(v).dtype), shape=tuple(np.asarray(v).shape[1:]))
        for name, v in (outputs or {}).items()
    )
    return Signature(inputs=tuple(specs), outputs=out_specs, layout=layout)


def to_model_input(signature: Signature, batch: Batch) -> np.ndarray | dict[str, np.ndarray]:
    """Check a batch against the signature and shape it the way the model takes it.

    Raises ``ValidationError`` naming the field for a missing or extra field, a
    wrong dtype, ragged lengths, or NaN where the signature does not allow it.
    """
    if isinstance(batch, np.ndarray):
        if batch.ndim != 2 or batch.shape[1] != len(signature.inputs):
            raise ValidationError(
                f"expected a 2-D array with {len(signature.inputs)} columns "
                f"({', '.join(signature.input_names)}), got shape {batch.shape}"
            )
        if signature.layout == "columns":
            batch = {s.name: batch[:, i] for i, s in enumerate(signature.inputs)}
        else:
            matrix = _cast(batch, signature.inputs[0].dtype, "input")
            for i, spec in enumerate(signature.inputs):
                _check_nan(spec, matrix[:, i])
            return matrix
    if not isinstance(batch, Mapping):
        raise ValidationError(
            f"a batch must be a dict of columns or a 2-D array, got {type(batch).__name__}"
        )
    missing = [s.name for s in signature.inputs if s.name not in batch]
    if missing:
        raise ValidationError(f"missing input field(s): {', '.join(map(repr, missing))}")
    extra = sorted(set(batch) - set(signature.input_names))
    if extra:
        raise ValidationError(f"unexpected input field(s): {', '.join(map(repr, extra))}")
    columns = {}
    lengths = set()
    for spec in signature.inputs:
        values = _cast(np.asarray(batch[spec.name]), spec.dtype, spec.name)
        if values.ndim != 1:
            raise ValidationError(f"field {spec.name!r} must be 1-D, got shape {values.shape}")
        _check_nan(spec, values)
        lengths.add(len(values))
        columns[spec.name] = values
    if len(lengths) > 1:
        raise ValidationError(f"input fields have different lengths: {sorted(lengths)}")
    if signature.layout == "matrix":
        return np.column_stack([columns[s.name] for s in signature.inputs])
    return columns


def _cast(values: np.ndarray, dtype: str, name: str) -> np.ndarray:
    target = np.dtype(dtype)
    if target.kind == "O":
        return values.astype(object)
    if values.dtype.kind in "OUS":
        try:
            return values.astype(target)
        except (TypeError, ValueError):
            raise ValidationError(
                f"field {name!r} must be {_KINDS.get(target.kind, 'numeric')}, got strings"
            ) from None
    return values.astype(target, copy=False)


def _check_nan(spec: FieldSpec, values: np.ndarray) -> None:
    if spec.allow_nan or values.dtype.kind != "f":
        return
    bad = np.flatnonzero(np.isnan(values))
    if len(bad):
        raise ValidationError(f"field {spec.name!r} must not be NaN (row {int(bad[0])})")
