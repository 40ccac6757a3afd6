"""On-demand features: computed per request (or per training row) from request fields and
other features, by an expression checked when the feature is defined.

``OnDemandFeature("amount_ratio", "amount / (amount_mean_1d + 1)")`` reads the request
field ``amount`` and the feature ``amount_mean_1d`` fetched alongside;
``"amount / (card_stats.amount_mean_1d + 1)"`` names the view explicitly. Nothing is
pickled and no user code runs: the expression is a small language over ``ast``
(``features.expression``; its docstring says what is allowed and why it is hand-written
rather than numexpr or pandas.eval), stored as its text with the views and evaluated
with numpy over whole columns.

On-demand features are referenced as ``on_demand:<name>`` (``ON_DEMAND`` is the view
part), where training sets, online reads and deployments name features; no feature view
may take that name.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelyard.errors import ValidationError
from modelyard.features.definitions import DTYPES, Dtype, FeatureRef, check_name
from modelyard.features.expression import (
    Column,
    Expression,
    broadcast,
    column,
    is_null,
    names_in,
    parse_expression,
)

ON_DEMAND = "on_demand"


@dataclass(frozen=True)
class OnDemandFeature:
    """A feature computed from ``expression`` when it is asked for, served as ``dtype``."""

    name: str
    expression: str
    dtype: Dtype = "float64"
    description: str = ""
    _parsed: Expression = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        check_name("on-demand feature", self.name)
        what = f"on-demand feature {self.name!r}"
        if self.dtype not in DTYPES:
            raise ValidationError(
                f"{what}: dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}"
            )
        parsed = parse_expression(self.expression, what)
        if self.dtype == "string" and parsed.kind in ("number", "bool"):
            raise ValidationError(
                f"{what} is declared string but {self.expression!r} gives a {parsed.kind}"
            )
        object.__setattr__(self, "_parsed", parsed)

    @property
    def ref(self) -> FeatureRef:
        """How training sets, online reads and deployments name it: ``on_demand:<name>``."""
        return FeatureRef(ON_DEMAND, self.name)

    @property
    def inputs(self) -> tuple[str, ...]:
        """The columns it reads, in order of first use: request fields or features fetched
        alongside (``amount``), and views' features (``card_stats:amount_mean_1d``)."""
        return self._parsed.inputs

    @property
    def view_features(self) -> tuple[FeatureRef, ...]:
        """The inputs written ``view.feature``: features of a named view."""
        return tuple(FeatureRef.parse(i) for i in self.inputs if ":" in i)

    def evaluate(self, columns: Mapping[str, Any], rows: int | None = None) -> Column:
        """The feature for each row of ``columns`` (one sequence or array per input, keyed
        as ``inputs`` names them; extra columns are ignored); ``rows`` is needed only when
        the expression reads no column. Nulls: NaN for numbers (an ``int64`` result with a
        null comes back as ``float64``, as pandas does), None for strings and booleans."""
        what = f"on-demand feature {self.name!r}"
        missing = [name for name in self.inputs if name not in columns]
        if missing:
            raise ValidationError(
                f"{what} reads {', '.join(missing)}, which the request does not carry; "
                f"it has {names_in(list(columns))}"
            )
        try:
            prepared = {name: column(columns[name], name) for name in self.inputs}
        except ValidationError as error:
            raise ValidationError(f"{what}: {error.message}") from None
        lengths = {name: len(values) for name, values in prepared.items()}
        sizes = set(lengths.values()) | ({rows} if rows is not None else set())
        if len(sizes) > 1:
            raise ValidationError(f"{what}: its inputs differ in length: {lengths}, rows={rows}")
        if not sizes:
            raise ValidationError(f"{what} reads no column: say how many rows (rows=)")
        try:
            values = self._parsed.run(prepared)
        except (TypeError, ValueError) as error:
            raise ValidationError(
                f"{what}: {self.expression!r} cannot be computed from its inputs ({error})"
            ) from None
        return _typed(broadcast(values, sizes.pop()), self.dtype, what)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, and the input of ``digest``; ``from_dict`` gives it back."""
        return {
            "name": self.name,
            "expression": self.expression,
            "dtype": self.dtype,
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OnDemandFeature:
        return cls(
            name=data["name"],
            expression=data["expression"],
            dtype=data.get("dtype", "float64"),
            description=data.get("description", ""),
        )

    @property
    def digest(self) -> str:
        """sha256 of the canonical JSON: equal exactly when the definitions are."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def _typed(values: Column, dtype: Dtype, what: str) -> Column:
    """The values as the declared ``dtype`` (see ``evaluate`` for nulls)."""
    array = np.asarray(values)
    nulls = is_null(array)
    if dtype == "string":
        if array.dtype.kind != "O":
            raise ValidationError(f"{what} is declared string but gives {array.dtype} values")
        out = np.full(array.shape, None, dtype=object)
        out[~nulls] = [str(v) for v in array[~nulls]]
        return out
    if array.dtype.kind == "O":
        if any(isinstance(v, str) for v in array[~nulls]):
            raise ValidationError(f"{what} is declared {dtype} but gives strings")
        array = np.array([np.nan if n else float(v) for v, n in zip(array, nulls, strict=True)])
    if dtype == "bool":
        truth = array.astype(bool) if array.dtype.kind == "b" else array != 0
        if not nulls.any():
            return truth
        out = np.full(array.shape, None, dtype=object)
        out[~nulls] = truth[~nulls]
        return out
    numbers = array.astype(np.float64)
    if dtype == "int64":
        whole = np.trunc(numbers)
        return whole if nulls.any() else whole.astype(np.int64)
    return numbers.astype(np.float32) if dtype == "float32" else numbers
