"""The write-ahead log's payload: the records of one commit, for one deployment, model and
version, as columns.

Why columns: the serving worker writes a payload for every micro-batch before
answering it, so this is on the hot path. A request's fields are entries of a few
lists (one ``orjson.dumps`` for the whole batch), each distinct input or output
object is written once, numeric columns as raw array bytes, and each request
points at its rows of them. When the serving layer passes a micro-batch's merged
input and outputs with each request's row span, 64 requests cost one
``bytes.join`` of the batch's columns. (One JSON document per request cost
~25-35 us for 30 features here, benchmarks/monitoring; one list of fields per
request ~2.5 us more per request than these columns, measured in a serving worker.)

The store keeps payloads as they are, one row each (``storage``), indexed by
the ``Summary`` written ahead of the payload, so the store writer reads neither
records nor arrays. ``payload.Payload`` reads one back.

Layout: ``b"\\x02"``, u32 length, the ``Summary`` (orjson); then ``b"\\x03"``,
u32 length of the header, the header (orjson), then the array bytes::

    header  = {"id": ..., "deployment": ..., "model": ..., "version": ...,
               "request_id": [...], "ts": [...], "latency_ms": [...], "rows": [...],
               "arm": str | [...], "status": int | [...], "error": null | [...],
               "inputs": [ref, ...] | null, "outputs": [ref, ...] | null,
               "blocks": [block, ...]}
    block   = {"names": [...], "columns": [column, ...]}   a dict of columns
            | {"names": [...], "packed": [dtype chars, rows, offset]}
                                                           equal-length 1-D numeric columns,
                                                           one after the other
            | {"names": [...], "matrix": column}           a 2-D input, one name per column
    column  = ["b", dtype char, shape, offset, nbytes]     numbers and booleans, native order
            | ["j", values]                                anything else, as JSON
    ref     = [block, start, stop] | null                  the record's rows of the block

A field that is the same for every record is written once (``arm``, ``status``,
``error``). Format ``b"\\x01"`` (one list of fields per record) is still read:
write-ahead logs and stores from before. Array bytes are in the writing
machine's native byte order, little-endian on every platform modelyard runs on.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import orjson

LEGACY = b"\x01"
SUMMARISED = b"\x02"
COLUMNAR = b"\x03"
# The longest text a record keeps per field (and the batches table's columns' lengths).
MAX_TEXT = {"id": 32, "request_id": 128, "deployment": 255, "model": 255, "arm": 64}
LENGTH = struct.Struct("<I")
_NUMERIC = frozenset("biuf")
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY

Rows = tuple[int, int] | None


class Summary(NamedTuple):
    """What the store indexes a payload by (``storage``): its id, the one deployment,
    model and version of its records, their time span and counts."""

    id: str
    deployment: str
    model: str
    version: int
    ts_first: float
    ts_last: float
    requests: int
    errors: int


@dataclass(slots=True)
class Group:
    """The records of one commit for one deployment, model and version, as columns.

    ``inputs[i]`` is record ``i``'s ``{name: column}`` or 2-D array (named by
    ``input_names[i]``), ``input_rows[i]`` its rows of it (None: all); the same
    object for several records is written once. Likewise ``outputs``.
    """

    deployment: str
    model: str
    version: int
    request_ids: list[str] = field(default_factory=list)
    ts: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    arms: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    errors: list[str | None] = field(default_factory=list)
    inputs: list[Any] = field(default_factory=list)
    input_names: list[Sequence[str] | None] = field(default_factory=list)
    input_rows: list[Rows] = field(default_factory=list)
    outputs: list[Any] = field(default_factory=list)
    output_rows: list[Rows] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.request_ids)

    def append(
        self,
        *,
        request_id: str,
        ts: float,
        latency_ms: float,
        rows: int,
        arm: str = "primary",
        status: int = 200,
        error: str | None = None,
        inputs: Any = None,
        input_names: Sequence[str] | None = None,
        input_rows: Rows = None,
        outputs: Any = None,
        output_rows: Rows = None,
    ) -> None:
        """Add one record (``InferenceLogger.record_batch`` adds a micro-batch's at once)."""
        self.request_ids.append(request_id)
        self.ts.append(ts)
        self.latency_ms.append(latency_ms)
        self.rows.append(rows)
        self.arms.append(arm)
        self.statuses.append(status)
        self.errors.append(error)
        self.inputs.append(inputs)
        self.input_names.append(input_names)
        self.input_rows.append(input_rows)
        self.outputs.append(outputs)
        self.output_rows.append(output_rows)

    def take(self, numbers: Sequence[int]) -> Group:
        """Records ``numbers`` of this group, in that order."""
        part = Group(self.deployment, self.model, self.version)
        for name in _PER_RECORD:
            values = getattr(self, name)
            setattr(part, name, [values[n] for n in numbers])
        return part


_PER_RECORD = (
    "request_ids",
    "ts",
    "latency_ms",
    "rows",
    "arms",
    "statuses",
    "errors",
    "inputs",
    "input_names",
    "input_rows",
    "outputs",
    "output_rows",
)


def json_default(value: Any) -> Any:
    """What orjson cannot write natively; the last resort is ``str``, never an error."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def encode(group: Group, payload_id: str) -> bytes:
    """One payload for ``group``, with its ``Summary`` ahead of it."""
    encoder = _Encoder()
    errors = list(group.errors)
    in_refs = encoder.refs(group.inputs, group.input_names, group.input_rows, errors)
    out_refs = encoder.refs(group.outputs, None, group.output_rows, errors)
    header = {
        "id": payload_id,
        "deployment": group.deployment,
        "model": group.model,
        "version": group.version,
        "request_id": group.request_ids,
        "ts": group.ts,
        "latency_ms": group.latency_ms,
        "rows": group.rows,
        "arm": _once(group.arms),
        "status": _once(group.statuses),
        "error": _once(errors),
        "inputs": in_refs,
        "outputs": out_refs,
        "blocks": encoder.blocks,
    }
    body = orjson.dumps(header, default=json_default, option=_OPTIONS)
    statuses = group.statuses
    failed = 0 if statuses.count(200) == len(statuses) else sum(1 for s in statuses if s >= 400)
    summary = (
        payload_id,
        group.deployment,
        group.model,
        group.version,
        min(group.ts),
        max(group.ts),
        len(group),
        failed,
    )
    head = orjson.dumps(summary)
    parts = [SUMMARISED, LENGTH.pack(len(head)), head, COLUMNAR, LENGTH.pack(len(body)), body]
    return b"".join([*parts, *encoder.parts])


def _once(values: list[Any]) -> Any:
    """The one value when all are equal (the common case), else the list."""
    first = values[0]
    return first if values.count(first) == len(values) else values


def read_summary(data: bytes) -> Summary | None:
    """The ``Summary`` written ahead of a payload, or None if it has none (or a bad one)."""
    if data[:1] != SUMMARISED:
        return None
    (length,) = LENGTH.unpack_from(data, 1)
    try:
        summary = Summary(*orjson.loads(data[1 + LENGTH.size : 1 + LENGTH.size + length]))
    except (ValueError, TypeError):
        return None
    text_ok = all(
        isinstance(getattr(summary, name), str) and len(getattr(summary, name)) <= MAX_TEXT[name]
        for name in ("id", "deployment", "model")
    )
    numbers_ok = all(type(v) in (int, float) for v in (summary.ts_first, summary.ts_last)) and all(
        type(v) is int for v in (summary.version, summary.requests, summary.errors)
    )
    return summary if text_ok and numbers_ok else None


class _Encoder:
    """The blocks of one payload, their array bytes, and which object is which block."""

    __slots__ = ("blocks", "lengths", "parts", "size", "seen")

    def __init__(self) -> None:
        self.blocks: list[dict[str, Any]] = []
        self.lengths: list[int] = []
        self.parts: list[bytes | memoryview] = []  # joined into the payload
        self.size = 0
        self.seen: dict[int, int] = {}  # id() is safe: every object outlives the payload

    def refs(
        self,
        objects: list[Any],
        names: list[Sequence[str] | None] | None,
        rows: list[Rows],
        errors: list[str | None],
    ) -> list[list[int] | None] | None:
        """Each record's ref to its rows of ``objects[i]``; a value that cannot be logged
        leaves a note in ``errors[i]`` instead."""
        first = objects[0]
        if all(obj is first for obj in objects):  # one micro-batch's object, or none at all
            if first is None:
                return None
            block = self._add(first, None if names is None else names[0], errors, 0)
            if block is None:
                for number in range(1, len(errors)):
                    errors[number] = errors[0]
                return None
            length = self.lengths[block]
            return [[block, 0, length] if span is None else [block, *span] for span in rows]
        refs: list[list[int] | None] = []
        seen = self.seen
        for number, obj in enumerate(objects):
            found = None if obj is None else seen.get(id(obj))
            if found is None and obj is not None:
                found = self._add(obj, None if names is None else names[number], errors, number)
            if found is None:
                refs.append(None)
                continue
            span = rows[number]
            refs.append([found, 0, self.lengths[found]] if span is None else [found, *span])
        return refs

    def _add(
        self, obj: Any, names: Sequence[str] | None, errors: list[str | None], number: int
    ) -> int | None:
        """The new block for ``obj``, or None (and a note in ``errors[number]``)."""
        try:
            spec, length = self._block(obj, names)
        except (TypeError, ValueError, AttributeError, IndexError) as error:
            note = f"not logged: {type(error).__name__}: {error}"
            errors[number] = "; ".join(filter(None, [errors[number], note]))
            return None
        block = self.seen[id(obj)] = len(self.blocks)
        self.blocks.append(spec)
        self.lengths.append(length)
        return block

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
        """The common case of a request's own dict in one ``bytes.join``: equal-length 1-D
        numeric arrays. ~0.1 us a column instead of ~1 us; None when anything is otherwise
        (the general path then handles it)."""
        values = list(obj.values())
        try:
            if any(value.ndim != 1 for value in values):
                return None
            dtypes = [value.dtype for value in values]
            if not all(dtype.kind in _NUMERIC for dtype in dtypes):
                return None
            lengths = set(map(len, values))
            data = b"".join(values)  # the buffers as they are: C-contiguous ones only
        except (AttributeError, TypeError, BufferError):
            return None
        if len(lengths) != 1:
            return None
        (rows,) = lengths
        if len(data) != rows * sum(dtype.itemsize for dtype in dtypes):
            return None
        offset = self.size
        self.parts.append(data)
        self.size += len(data)
        chars = "".join(dtype.char for dtype in dtypes)
        return {"names": list(obj), "packed": [chars, rows, offset]}, rows

    def _column(self, value: Any) -> list[Any]:
        if isinstance(value, np.ndarray):
            dtype = value.dtype
            if dtype.kind in _NUMERIC:
                # The array itself when its buffer is in C order (joined into the payload
                # once), else a C-ordered copy.
                data = value.data if value.flags.c_contiguous else value.tobytes()
                offset = self.size
                self.parts.append(data)
                self.size += value.nbytes
                return ["b", dtype.char, value.shape, offset, value.nbytes]
            return ["j", value.tolist()]
        return ["j", list(value)]
