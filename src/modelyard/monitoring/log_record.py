"""The write-ahead log's payload: one per ``commit()``, holding that commit's records.

Why not one JSON document per record: on the hot path, JSON costs ~0.2 us per
float (number to text) and ~0.7 us per numpy array, ~25-35 us for a request
of 30 features on this machine (benchmarks/monitoring). Here a commit writes
each distinct input or output object once, numeric columns as raw array bytes,
and each record points at its rows of them. When the serving layer passes a
micro-batch's merged input and outputs with each request's row span, 64
requests cost one ``bytes.join`` of the batch's columns; a request's own dict
of equal-length numeric columns costs one ``bytes.join`` too (``packed``). The
store writer, off the hot path, turns the bytes into the table's JSON text
(``decode_rows``).

Layout: ``b"\\x01"`` (format), u32 length of the header, the header (orjson),
then the array bytes::

    header  = {"records": [[*FIELDS, inputs ref, outputs ref], ...], "blocks": [block, ...]}
    block   = {"names": [...], "columns": [column, ...]}   a dict of columns
            | {"names": [...], "packed": [dtype chars, rows, offset]}
                                                           equal-length 1-D numeric columns,
                                                           one after the other
            | {"names": [...], "matrix": column}           a 2-D input, one name per column
    column  = ["b", dtype char, shape, offset, nbytes]     numbers and booleans, native order
            | ["j", values]                                anything else, as JSON
    ref     = [block, start, stop] | null                  the record's rows of the block

The bytes are read back only on the machine that wrote them, so native byte
order is safe.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson

FORMAT = b"\x01"
FIELDS = (
    "id",
    "request_id",
    "ts",
    "deployment",
    "model",
    "version",
    "arm",
    "status",
    "latency_ms",
    "rows",
    "error",
)
ERROR = FIELDS.index("error")
COLUMNS = (*FIELDS, "inputs", "outputs")  # of the rows ``decode_rows`` returns
_LENGTH = struct.Struct("<I")
_NUMERIC = frozenset("biuf")
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY

Rows = tuple[int, int] | None
# One pending record: (FIELDS values, inputs, input names, input rows, outputs, output rows).
Pending = tuple[list[Any], Any, Sequence[str] | None, Rows, Any, Rows]


def json_default(value: Any) -> Any:
    """What orjson cannot write natively; the last resort is ``str``, never an error."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def encode_batch(pending: Sequence[Pending]) -> bytes:
    """One payload for ``pending``; objects shared by several records are written once."""
    encoder = _Encoder()
    records = []
    for fields, inputs, names, input_rows, outputs, output_rows in pending:
        in_ref = None if inputs is None else encoder.ref(inputs, names, input_rows)
        out_ref = None if outputs is None else encoder.ref(outputs, None, output_rows)
        if encoder.failure is not None:  # log the request, if not its values
            fields = list(fields)
            fields[ERROR] = "; ".join(filter(None, [fields[ERROR], encoder.failure]))
            encoder.failure = None
        records.append([*fields, in_ref, out_ref])
    header = orjson.dumps(
        {"records": records, "blocks": encoder.blocks}, default=json_default, option=_OPTIONS
    )
    return b"".join([FORMAT, _LENGTH.pack(len(header)), header, *encoder.parts])


class _Encoder:
    """The blocks of one payload, their array bytes, and which object is which block."""

    __slots__ = (
        "blocks",
        "lengths",
        "parts",
        "size",
        "seen",
        "failure",
        "_dtypes",
        "_chars",
        "_width",
    )

    def __init__(self) -> None:
        self.blocks: list[dict[str, Any]] = []
        self.lengths: list[int] = []
        self.parts: list[bytes] = []
        self.size = 0
        self.seen: dict[int, int] = {}  # id() is safe: every object outlives the payload
        self.failure: str | None = None
        self._dtypes: list[np.dtype[Any]] = []
        self._chars = ""
        self._width = 0

    def ref(self, obj: Any, names: Sequence[str] | None, rows: Rows) -> list[int] | None:
        block = self.seen.get(id(obj))
        if block is None:
            try:
                spec, length = self._block(obj, names)
            except (TypeError, ValueError, AttributeError, IndexError) as error:
                self.failure = f"not logged: {type(error).__name__}: {error}"
                return None
            block = self.seen[id(obj)] = len(self.blocks)
            self.blocks.append(spec)
            self.lengths.append(length)
        if rows is None:
            return [block, 0, self.lengths[block]]
        return [block, rows[0], rows[1]]

    def _block(self, obj: Any, names: Sequence[str] | None) -> tuple[dict[str, Any], int]:
        if isinstance(obj, np.ndarray):
            if obj.ndim != 2:
                raise ValueError(f"an array input must be 2-D (rows x fields), got {obj.shape}")
            labels = list(names) if names is not None else [str(j) for j in range(obj.shape[1])]
            if len(labels) != obj.shape[1]:
                raise ValueError(f"{len(labels)} names for {obj.shape[1]} columns")
            return {"names": labels, "matrix": self._column(obj)}, obj.shape[0]
        if not isinstance(obj, Mapping):
            raise TypeError(f"expected a dict of columns, got {type(obj).__name__}")
        packed = self._packed(obj)
        if packed is not None:
            return packed
        column = self._column
        columns = [column(value) for value in obj.values()]
        length = len(next(iter(obj.values()))) if obj else 0
        return {"names": list(obj), "columns": columns}, length

    def _packed(self, obj: Mapping[str, Any]) -> tuple[dict[str, Any], int] | None:
        """The common case in one ``bytes.join``: equal-length 1-D numeric arrays.

        ~0.1 us a column instead of ~1 us; None when anything is otherwise
        (the general path then handles it).
        """
        values = list(obj.values())
        try:
            dtypes = [value.dtype for value in values]
            if dtypes != self._dtypes:  # usually the same dtype objects as the last block's
                if not all(dtype.kind in _NUMERIC for dtype in dtypes):
                    return None
                self._dtypes = dtypes
                self._chars = "".join(dtype.char for dtype in dtypes)
                self._width = sum(dtype.itemsize for dtype in dtypes)
            lengths = set(map(len, values))
            data = b"".join(values)  # the buffers as they are: C-contiguous ones only
        except (AttributeError, TypeError, BufferError):
            return None
        if len(lengths) != 1:
            return None
        (rows,) = lengths
        if len(data) != rows * self._width:  # a 2-D column, or a length that disagrees
            return None
        offset = self.size
        self.parts.append(data)
        self.size += len(data)
        return {"names": list(obj), "packed": [self._chars, rows, offset]}, rows

    def _column(self, value: Any) -> list[Any]:
        if isinstance(value, np.ndarray):
            dtype = value.dtype
            if dtype.kind in _NUMERIC:
                data = value.tobytes()  # C order, whatever the array's layout
                offset = self.size
                self.parts.append(data)
                self.size += len(data)
                return ["b", dtype.char, value.shape, offset, len(data)]
            return ["j", value.tolist()]
        return ["j", list(value)]


def decode_rows(payload: bytes) -> tuple[list[tuple[Any, ...]], int]:
    """The table rows of a payload (tuples in ``COLUMNS`` order) and how many were unreadable."""
    if payload[:1] != FORMAT:
        raise ValueError(f"unknown inference log format {payload[:1]!r}")
    (length,) = _LENGTH.unpack_from(payload, 1)
    base = 1 + _LENGTH.size + length
    header = orjson.loads(payload[1 + _LENGTH.size : base])
    blocks = [_decode_block(block, payload, base) for block in header["blocks"]]
    rows, bad = [], 0
    for record in header["records"]:
        try:
            rows.append(_row(record, blocks))
        except (ValueError, TypeError, KeyError, IndexError):
            bad += 1
    return rows, bad


def _decode_block(
    block: dict[str, Any], payload: bytes, base: int
) -> tuple[list[str], list[list[Any]]]:
    names = block["names"]
    if "packed" in block:
        chars, rows, at = block["packed"]
        columns = []
        for char in chars:
            dtype = np.dtype(char)
            columns.append(np.frombuffer(payload, dtype, rows, base + at).tolist())
            at += rows * dtype.itemsize
        return names, columns
    if "matrix" in block:
        matrix = np.asarray(_values(block["matrix"], payload, base, as_array=True))
        return names, [matrix[:, j].tolist() for j in range(len(names))]
    return names, [_values(column, payload, base) for column in block["columns"]]


def _values(column: list[Any], payload: bytes, base: int, *, as_array: bool = False) -> Any:
    if column[0] == "j":
        return column[1]
    _, char, shape, offset, size = column
    dtype = np.dtype(char)
    array = np.frombuffer(payload, dtype=dtype, count=size // dtype.itemsize, offset=base + offset)
    array = array.reshape(shape)
    return array if as_array else array.tolist()


def _row(record: list[Any], blocks: list[tuple[list[str], list[list[Any]]]]) -> tuple[Any, ...]:
    (
        record_id,
        request_id,
        ts,
        deployment,
        model,
        version,
        arm,
        status,
        latency_ms,
        rows,
        error,
        inputs,
        outputs,
    ) = record
    return (  # COLUMNS order; strings cut to their column's length
        str(record_id),
        str(request_id)[:128],
        float(ts),
        str(deployment)[:255],
        str(model)[:255],
        int(version),
        str(arm or "primary")[:64],
        int(status),
        float(latency_ms),
        int(rows or 0),
        None if error is None else str(error),
        _text(blocks, inputs),
        _text(blocks, outputs),
    )


def _text(blocks: list[tuple[list[str], list[list[Any]]]], ref: list[int] | None) -> str | None:
    if ref is None:
        return None
    block, start, stop = ref
    names, columns = blocks[block]
    part = {name: values[start:stop] for name, values in zip(names, columns, strict=True)}
    return orjson.dumps(part, default=json_default, option=_OPTIONS).decode()
