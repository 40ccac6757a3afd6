"""Request validation compiled once per model version from its signature.

``InputValidator`` turns what arrives on the wire (protocol tensors, or JSON
records) straight into the array the model takes, checking on the way every
rule the signature states: no missing or extra fields, the right JSON types,
shapes that agree, NaN only where allowed, values inside declared ranges, and
no more rows than the server accepts; and that a tensor's values are what its own
datatype declares (integers, in range, for ``INT*``/``UINT*``). Every error names
the field and row.

Hand-written rather than pydantic/jsonschema: those build a Python object per
value and then copy again into numpy; here a row of 30 features is one type
check and one ``np.array`` call, a few microseconds in all. It does the same
job as ``modelyard.registry.signature.to_model_input`` (which serves the
in-process ``Predictor.predict``) but starts from JSON, so it can say which row
and field was wrong and what arrived.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np

from modelyard.errors import (
    MalformedRequestError,
    PayloadTooLargeError,
    UnsupportedModelError,
    ValidationError,
)
from modelyard.registry.signature import Signature
from modelyard.serving.hosting.fields import (
    FAST_TYPES,
    bad_value,
    check_bounds,
    check_range,
    clean_values,
    column,
    value_range,
)
from modelyard.serving.hosting.images import ImageInputs
from modelyard.serving.wire.binary import flat_values
from modelyard.serving.wire.classification import check_counts
from modelyard.serving.wire.messages import names_list
from modelyard.serving.wire.oip import (
    ACCEPTED_DATATYPES,
    INTEGER_DATATYPES,
    InferRequest,
    Tensor,
    check_outputs,
    datatype_of,
)

ModelInput = np.ndarray | dict[str, np.ndarray]

MATRIX_INPUT = "input"  # the name metadata gives a matrix model's one tensor (oip)
# The values each integer datatype holds: a tensor declared so must hold those, whatever
# the field then converts them to.
_INTEGER_RANGES = {
    datatype: (int(np.iinfo(datatype.lower()).min), int(np.iinfo(datatype.lower()).max))
    for datatype in INTEGER_DATATYPES
}


@dataclass(slots=True)
class Prepared:
    """A validated request: its row count and the model's input for those rows."""

    rows: int
    model_input: ModelInput


def served_signature(signature: Signature, model_takes: Mapping[str, np.dtype[Any]]) -> Signature:
    """``signature`` with each floating-point input narrowed to the float the model itself
    takes (``model_takes``: model input name -> dtype; a matrix model's one input is
    ``input``): a float64 training frame gives an ONNX graph that takes float32, and the
    metadata should ask clients for FP32 and values be checked against float32's range.
    Other inputs, and floats the model takes as wide as they came, keep their dtype."""

    def narrowed(name: str, dtype: str) -> str:
        takes = model_takes.get(MATRIX_INPUT if signature.layout == "matrix" else name)
        if takes is None or takes.kind != "f" or np.dtype(dtype).kind != "f":
            return dtype
        return takes.name if takes.itemsize < np.dtype(dtype).itemsize else dtype

    inputs = tuple(replace(s, dtype=narrowed(s.name, s.dtype)) for s in signature.inputs)
    return replace(signature, inputs=inputs)


class InputValidator:
    """Checks requests against one signature and builds the model input."""

    def __init__(self, signature: Signature, max_rows: int) -> None:
        specs = list(signature.inputs)
        if not specs:
            raise UnsupportedModelError("a served model needs at least one input field")
        for spec in specs:
            if spec.shape:
                raise UnsupportedModelError(
                    f"field {spec.name!r} has per-row shape {spec.shape}; serving takes "
                    "scalar fields only"
                )
        self.signature = signature
        self.specs = specs
        self.names = [s.name for s in specs]
        self.lookup = {s.name: s for s in specs}
        self.width = len(specs)
        self.max_rows = max_rows
        self._keys = frozenset(self.names)
        self._matrix = signature.layout == "matrix"
        self._getter: Callable[[dict[str, Any]], tuple[Any, ...]]
        if self.width > 1:
            self._getter = itemgetter(*self.names)
        else:
            only = self.names[0]
            self._getter = lambda record: (record[only],)
        if self._matrix:
            kinds = {s.kind for s in specs}
            if len(kinds) != 1:
                raise UnsupportedModelError("a matrix-layout signature must have one kind")
            self._kind = kinds.pop()
            self.dtype = np.dtype(specs[0].dtype)
            self._fast = FAST_TYPES[self._kind]
            self._limits = value_range(self.dtype) if self._kind in ("number", "integer") else None
            bounded = any(s.minimum is not None or s.maximum is not None for s in specs)
            self._lows = np.array([-np.inf if s.minimum is None else s.minimum for s in specs])
            self._highs = np.array([np.inf if s.maximum is None else s.maximum for s in specs])
            self._bounded = bounded
        self._images = (
            None
            if signature.image is None or not self._matrix
            else ImageInputs(signature.image, self.dtype, self._check_rows)
        )

    @property
    def matrix_datatype(self) -> str | None:
        """The datatype of the single ``[rows, fields]`` tensor a matrix model accepts."""
        return datatype_of(self.dtype) if self._matrix else None

    # -- protocol tensors -------------------------------------------------------------

    def from_oip(self, request: InferRequest) -> Prepared:
        """An Open Inference Protocol request: its tensors (``from_tensors``), after checking
        that the outputs it names are the model's."""
        if request.outputs:
            check_outputs(request.outputs, self.signature)
            if request.classification:
                check_counts(request.classification, self.signature)
        if self._images is not None and self._images.takes_tensors(request.inputs):
            return Prepared(*self._images.from_tensor(request.inputs[0]))
        return self.from_tensors(request.inputs)

    def from_tensors(self, tensors: list[Tensor]) -> Prepared:
        """One ``[rows, fields]`` tensor (fields in signature order), or one tensor per field."""
        if (
            len(tensors) == 1
            and tensors[0].name not in self.lookup
            and self._takes_matrix(tensors[0])
        ):
            return self._from_matrix_tensor(tensors[0])
        given: dict[str, Tensor] = {}
        unknown = []
        for tensor in tensors:
            if tensor.name not in self.lookup:
                unknown.append(tensor.name)
            elif tensor.name in given:
                raise ValidationError(f"input {tensor.name!r} is given more than once")
            else:
                given[tensor.name] = tensor
        if unknown:
            raise ValidationError(
                f"unexpected input field(s) {names_list(unknown)}; this model takes "
                f"{names_list(self.names)} (one tensor each), or one [rows, {self.width}] "
                f"tensor named {MATRIX_INPUT!r}"
            )
        missing = [name for name in self.names if name not in given]
        if missing:
            raise ValidationError(f"missing input field(s) {names_list(missing)}")
        rows = -1
        for spec in self.specs:
            tensor = given[spec.name]
            self._check_datatype(spec.name, spec.kind, tensor.datatype)
            check_declared_values(tensor)
            shape = tensor.shape
            if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
                raise ValidationError(
                    f"input {spec.name!r} must have shape [rows] or [rows, 1], got {list(shape)}"
                )
            if rows < 0:
                rows = shape[0]
            elif shape[0] != rows:
                raise ValidationError(
                    f"inputs have different row counts: {self.names[0]!r} has {rows}, "
                    f"{spec.name!r} has {shape[0]}"
                )
        self._check_rows(rows)
        return Prepared(
            rows,
            self._assemble(
                {s.name: column(s, flat_values(given[s.name].data)) for s in self.specs}
            ),
        )

    def _takes_matrix(self, tensor: Tensor) -> bool:
        """Whether a tensor that is no field is the ``[rows, fields]`` one: named as the
        metadata names it (any other name is an unknown input)."""
        return tensor.name == MATRIX_INPUT

    def _from_matrix_tensor(self, tensor: Tensor) -> Prepared:
        shape = tensor.shape
        if len(shape) != 2 or shape[1] != self.width:
            raise ValidationError(
                f"input {tensor.name!r} must have shape [rows, {self.width}] with the fields "
                f"{names_list(self.names, 4)} in that order (or send one tensor per field), "
                f"got {list(shape)}"
            )
        rows = shape[0]
        self._check_rows(rows)
        if tensor.datatype in _INTEGER_RANGES:
            check_declared_values(tensor, self.names)
        if self._matrix:
            self._check_datatype(tensor.name, self._kind, tensor.datatype)
            data = tensor.data
            if isinstance(data, np.ndarray):
                return Prepared(rows, self._matrix_from_array(data, rows))
            return Prepared(rows, self._matrix_from_flat(data, rows))
        values = flat_values(tensor.data)
        columns = {}
        for j, spec in enumerate(self.specs):
            self._check_datatype(spec.name, spec.kind, tensor.datatype)
            columns[spec.name] = column(spec, values[j :: self.width])
        return Prepared(rows, columns)

    # -- JSON records -----------------------------------------------------------------

    def from_records(self, instances: object) -> Prepared:
        """``[{"field": value, ...}, ...]``, or ``[[value, ...], ...]`` in signature order."""
        if type(instances) is not list or not instances:
            raise MalformedRequestError("'instances' must be a non-empty list of records")
        if self._images is not None and self._images.takes_records(instances):
            return Prepared(*self._images.from_records(instances))
        rows = len(instances)
        self._check_rows(rows)
        if type(instances[0]) is dict:
            keys = self._keys
            if not all(type(r) is dict and r.keys() == keys for r in instances):
                self._record_error(instances)
            if self._matrix:
                flat = list(chain.from_iterable(map(self._getter, instances)))
                return Prepared(rows, self._matrix_from_flat(flat, rows))
            return Prepared(
                rows, {s.name: column(s, [r[s.name] for r in instances]) for s in self.specs}
            )
        if type(instances[0]) is list:
            width = self.width
            for row, record in enumerate(instances):
                if type(record) is not list or len(record) != width:
                    raise ValidationError(
                        f"record {row} must be a list of {width} values in the order "
                        f"{names_list(self.names, 4)}, or an object of field values"
                    )
            if self._matrix:
                return Prepared(
                    rows, self._matrix_from_flat(list(chain.from_iterable(instances)), rows)
                )
            return Prepared(
                rows,
                {s.name: column(s, [r[j] for r in instances]) for j, s in enumerate(self.specs)},
            )
        raise ValidationError(
            "each record must be an object of field values or a list in field order (row 0)"
        )

    def _record_error(self, instances: list[Any]) -> None:
        for row, record in enumerate(instances):
            if type(record) is not dict:
                raise ValidationError(f"record {row} must be an object of field values")
            missing = [n for n in self.names if n not in record]
            if missing:
                raise ValidationError(f"missing field(s) {names_list(missing)} (row {row})")
            extra = [k for k in record if k not in self._keys]
            if extra:
                raise ValidationError(
                    f"unexpected field(s) {names_list(extra)} (row {row}); this model takes "
                    f"{names_list(self.names)}"
                )

    # -- shared -----------------------------------------------------------------------

    def _matrix_from_flat(self, flat: list[Any], rows: int) -> np.ndarray:
        cleaned = not set(map(type, flat)) <= self._fast
        if cleaned:
            flat = clean_values(flat, self._locate, self.lookup)
        if self._limits is not None:
            check_range(flat, self._limits, self._locate, cleaned)
        matrix = np.array(flat, dtype=self.dtype).reshape(rows, self.width)
        if self._bounded:
            check_bounds(matrix, self._lows, self._highs, self.names)
        return matrix

    def _matrix_from_array(self, values: np.ndarray, rows: int) -> np.ndarray:
        """``_matrix_from_flat`` for binary tensor data, without a Python list: the same
        checks (NaN only where a field allows it, the dtype's range, declared bounds)."""
        matrix = values.reshape(rows, self.width)
        if matrix.dtype.kind == "f":
            nan = np.isnan(matrix)
            if nan.any():
                allowed = np.array([self.lookup[name].allow_nan for name in self.names])
                bad = nan & ~allowed
                if bad.any():
                    row, col = (int(i[0]) for i in np.nonzero(bad))
                    raise bad_value(self.lookup[self.names[col]], None, row)
        if self._limits is not None:
            low, high = self._limits
            outside = (matrix < low) | (matrix > high)
            if outside.any():
                row, col = (int(i[0]) for i in np.nonzero(outside))
                raise ValidationError(
                    f"field {self.names[col]!r} value {matrix[row, col].item()!r} is out of "
                    f"range [{low:g}, {high:g}] (row {row})"
                )
        matrix = matrix.astype(self.dtype)  # a copy: the model gets a writable array
        if self._bounded:
            check_bounds(matrix, self._lows, self._highs, self.names)
        return matrix

    def _locate(self, index: int) -> tuple[str, int]:
        return self.names[index % self.width], index // self.width

    def _assemble(self, columns: dict[str, np.ndarray]) -> ModelInput:
        if self._matrix:
            return np.column_stack([columns[name] for name in self.names])
        return columns

    def _check_rows(self, rows: int) -> None:
        if rows > self.max_rows:
            raise PayloadTooLargeError(
                f"the request has {rows} rows; this server takes at most {self.max_rows} a request"
            )
        if rows == 0:
            raise ValidationError("the request has no rows")

    @staticmethod
    def _check_datatype(name: str, kind: str, datatype: str) -> None:
        if datatype not in ACCEPTED_DATATYPES[kind]:
            accepted = ", ".join(sorted(ACCEPTED_DATATYPES[kind]))
            raise ValidationError(
                f"input {name!r} holds {kind} values (datatype {accepted}), got datatype {datatype}"
            )


def check_declared_values(tensor: Tensor, fields: list[str] | None = None) -> None:
    """Refuse values that the tensor's own integer datatype cannot hold: ``17.99`` or
    ``300`` in a ``UINT8`` tensor says the client sent something else than it meant.
    ``fields`` names the columns of a ``[rows, fields]`` tensor, for the message."""
    limits = _INTEGER_RANGES.get(tensor.datatype)
    data = tensor.data
    # binary tensor data is an array of the datatype itself: integral and in range
    if limits is None or isinstance(data, np.ndarray) or not data:
        return
    low, high = limits
    if set(map(type, data)) <= {int} and min(data) >= low and max(data) <= high:
        return
    for i, value in enumerate(data):
        kind = type(value)
        if kind is not int and kind is not float:
            continue  # null, text, ...: the field's own rules decide
        integral = kind is int or value.is_integer()
        if integral and low <= value <= high:
            continue
        where, row = f"input {tensor.name!r}", i
        if fields:
            where += f" field {fields[i % len(fields)]!r}"
            row = i // len(fields)
        if not integral:
            raise ValidationError(
                f"{where} must be an integer, got {value!r} (row {row}): its datatype is "
                f"{tensor.datatype}; send integers, or declare a floating-point datatype"
            )
        raise ValidationError(
            f"{where} value {value!r} is out of range [{low}, {high}] of its datatype "
            f"{tensor.datatype} (row {row})"
        )
