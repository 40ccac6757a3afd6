"""Reading inference log payloads back (the format is ``record``'s): their records'
fields as checked columns, and their blocks as arrays over the payload's bytes.

Reads both formats: columnar (``record.COLUMNAR``, what serving writes) and
the older one list per record (``record.LEGACY``: write-ahead logs and stores
from before, and what migration 0006 wrote).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import orjson

from modelyard.monitoring.inference_log.record import (
    COLUMNAR,
    LEGACY,
    LENGTH,
    MAX_TEXT,
    SUMMARISED,
    Group,
)

Columns = dict[str, Any]  # name -> a numpy array or a list, one entry per row
# A record's rows of a block: (block number, start, stop), or None when not logged.
Ref = tuple[int, int, int] | None
_LEGACY_FIELDS = 11  # id, request_id, ts, deployment, model, version, arm, status,
# latency_ms, rows, error; then the inputs and outputs refs
# The per-record columns of a ``Payload``, in the order of a legacy record's fields.
_COLUMNS = (
    "request_ids",
    "ts",
    "deployments",
    "models",
    "versions",
    "arms",
    "statuses",
    "latency_ms",
    "rows",
    "errors",
    "in_refs",
    "out_refs",
)


class Record(NamedTuple):
    """One logged request, its fields checked."""

    request_id: str
    ts: float
    deployment: str
    model: str
    version: int
    arm: str
    status: int
    latency_ms: float
    rows: int
    error: str | None


class Payload:
    """One payload read back: its records' fields as columns, their refs, its blocks.

    Raises ``ValueError`` for a payload that cannot be read. In the older format a
    malformed record is left out and counted in ``unreadable``; the rest still reads.
    """

    __slots__ = (
        "id",
        *_COLUMNS,
        "unreadable",
        "_data",
        "_base",
        "_specs",
        "_blocks",
    )

    id: str
    request_ids: list[str]
    ts: list[float]
    deployments: list[str]
    models: list[str]
    versions: list[int]
    arms: list[str]
    statuses: list[int]
    latency_ms: list[float]
    rows: list[int]
    errors: list[str | None]
    in_refs: list[Ref]
    out_refs: list[Ref]

    def __init__(self, data: bytes) -> None:
        at = 0
        if data[:1] == SUMMARISED:
            at = 1 + LENGTH.size + LENGTH.unpack_from(data, 1)[0]
        kind = data[at : at + 1]
        if kind not in (COLUMNAR, LEGACY):
            raise ValueError(f"unknown inference log format {kind!r}")
        (length,) = LENGTH.unpack_from(data, at + 1)
        self._base = at + 1 + LENGTH.size + length
        header = orjson.loads(data[at + 1 + LENGTH.size : self._base])
        self._data = data
        self._specs: list[dict[str, Any]] = header["blocks"]
        self._blocks: list[Columns] | None = None
        self.unreadable = 0
        try:
            if kind == COLUMNAR:
                self._columnar(header)
            else:
                self._legacy(header["records"])
        except (TypeError, KeyError, IndexError, AttributeError) as error:
            raise ValueError(f"a malformed inference log payload: {error!r}") from error

    def __len__(self) -> int:
        return len(self.request_ids)

    def _columnar(self, header: dict[str, Any]) -> None:
        count = len(header["request_id"])
        self.id = _text(header["id"], "id")
        self.request_ids = [_text(v, "request_id") for v in header["request_id"]]
        self.ts = [float(v) for v in _each(header["ts"], count, many=True)]
        self.deployments = [_text(header["deployment"], "deployment")] * count
        self.models = [_text(header["model"], "model")] * count
        self.versions = [int(header["version"])] * count
        self.arms = [_text(v or "primary", "arm") for v in _each(header["arm"], count)]
        self.statuses = [int(v) for v in _each(header["status"], count)]
        self.latency_ms = [float(v) for v in _each(header["latency_ms"], count, many=True)]
        self.rows = [int(v or 0) for v in _each(header["rows"], count, many=True)]
        self.errors = [None if v is None else str(v) for v in _each(header["error"], count)]
        blocks = len(self._specs)
        self.in_refs = [_ref(v, blocks) for v in _each(header["inputs"], count)]
        self.out_refs = [_ref(v, blocks) for v in _each(header["outputs"], count)]

    def _legacy(self, records: list[list[Any]]) -> None:
        for name in _COLUMNS:
            setattr(self, name, [])
        self.id = ""
        blocks = len(self._specs)
        for raw in records:
            try:
                if len(raw) != _LEGACY_FIELDS + 2:
                    raise ValueError(f"a record has {_LEGACY_FIELDS + 2} entries, got {len(raw)}")
                record_id, request_id, ts, deployment, model, version, arm, status = raw[:8]
                latency, rows, error, in_ref, out_ref = raw[8:]
                values = (
                    _text(request_id, "request_id"),
                    float(ts),
                    _text(deployment, "deployment"),
                    _text(model, "model"),
                    int(version),
                    _text(arm or "primary", "arm"),
                    int(status),
                    float(latency),
                    int(rows or 0),
                    None if error is None else str(error),
                    _ref(in_ref, blocks),
                    _ref(out_ref, blocks),
                )
            except (ValueError, TypeError, IndexError):
                self.unreadable += 1
                continue
            self.id = self.id or _text(record_id, "id")
            for name, value in zip(_COLUMNS, values, strict=True):
                getattr(self, name).append(value)

    @property
    def blocks(self) -> list[Columns]:
        """Each block as ``{name: column}``: arrays over the payload's bytes, or lists."""
        if self._blocks is None:
            self._blocks = [_decode_block(spec, self._data, self._base) for spec in self._specs]
        return self._blocks

    def record(self, number: int) -> Record:
        return Record(
            self.request_ids[number],
            self.ts[number],
            self.deployments[number],
            self.models[number],
            self.versions[number],
            self.arms[number],
            self.statuses[number],
            self.latency_ms[number],
            self.rows[number],
            self.errors[number],
        )

    @property
    def records(self) -> list[Record]:
        return [self.record(number) for number in range(len(self))]

    def inputs(self, number: int) -> Columns | None:
        """Record ``number``'s input rows as ``{name: column}``, or None if not logged."""
        return self._slice(self.in_refs[number])

    def outputs(self, number: int) -> Columns | None:
        return self._slice(self.out_refs[number])

    def group(self, numbers: Sequence[int]) -> Group:
        """Records ``numbers`` (all of one deployment, model and version) as a ``Group`` to
        encode anew; a block shared by several of them stays one object."""
        first = numbers[0]
        group = Group(self.deployments[first], self.models[first], self.versions[first])
        blocks = self.blocks
        for number in numbers:
            in_ref, out_ref = self.in_refs[number], self.out_refs[number]
            group.append(
                request_id=self.request_ids[number],
                ts=self.ts[number],
                latency_ms=self.latency_ms[number],
                rows=self.rows[number],
                arm=self.arms[number],
                status=self.statuses[number],
                error=self.errors[number],
                inputs=None if in_ref is None else blocks[in_ref[0]],
                input_rows=None if in_ref is None else (in_ref[1], in_ref[2]),
                outputs=None if out_ref is None else blocks[out_ref[0]],
                output_rows=None if out_ref is None else (out_ref[1], out_ref[2]),
            )
        return group

    def _slice(self, ref: Ref) -> Columns | None:
        if ref is None:
            return None
        block, start, stop = ref
        return {name: column[start:stop] for name, column in self.blocks[block].items()}


class RequestEntry(NamedTuple):
    """What the store indexes of one logged request: its id, rows and status."""

    request_id: str
    rows: int
    status: int


def request_entries(data: bytes) -> list[RequestEntry]:
    """Each record's ``RequestEntry``, from the payload's header alone (the store writer's
    request index: no block is decoded, no record checked beyond these three fields).
    Raises ``ValueError`` for a payload that cannot be read."""
    at = 0
    if data[:1] == SUMMARISED:
        at = 1 + LENGTH.size + LENGTH.unpack_from(data, 1)[0]
    kind = data[at : at + 1]
    try:
        (length,) = LENGTH.unpack_from(data, at + 1)
        header = orjson.loads(data[at + 1 + LENGTH.size : at + 1 + LENGTH.size + length])
        if kind == COLUMNAR:
            ids = header["request_id"]
            count = len(ids)
            rows = _each(header["rows"], count, many=True)
            statuses = _each(header["status"], count)
            return [
                RequestEntry(_text(i, "request_id"), int(r or 0), int(s))
                for i, r, s in zip(ids, rows, statuses, strict=True)
            ]
        if kind == LEGACY:
            return [
                RequestEntry(_text(r[1], "request_id"), int(r[9] or 0), int(r[7]))
                for r in header["records"]
            ]
    except (TypeError, KeyError, IndexError, struct.error) as error:
        raise ValueError(f"a malformed inference log payload: {error!r}") from error
    raise ValueError(f"unknown inference log format {kind!r}")


def _text(value: Any, name: str) -> str:
    return str(value)[: MAX_TEXT[name]]


def _each(value: Any, count: int, *, many: bool = False) -> list[Any]:
    """A header field as one value per record: a list of ``count``, or one value for all."""
    if isinstance(value, list):
        if len(value) != count:
            raise ValueError(f"a field has {len(value)} values for {count} records")
        return value
    if many:
        raise ValueError(f"a per-record field holds one value, {value!r}")
    return [value] * count


def _ref(raw: Any, blocks: int) -> Ref:
    if raw is None:
        return None
    if len(raw) != 3:
        raise ValueError(f"a ref is [block, start, stop], got {raw!r}")
    block, start, stop = int(raw[0]), int(raw[1]), int(raw[2])
    if not (0 <= block < blocks and 0 <= start <= stop):
        raise ValueError(f"a record points at rows {start}:{stop} of block {block} of {blocks}")
    return block, start, stop


def _decode_block(spec: dict[str, Any], data: bytes, base: int) -> Columns:
    names = spec["names"]
    if "packed" in spec:
        chars, rows, at = spec["packed"]
        columns = []
        for char in chars:
            dtype = np.dtype(char)
            columns.append(np.frombuffer(data, dtype, rows, base + at))
            at += rows * dtype.itemsize
    elif "matrix" in spec:
        matrix = _values(spec["matrix"], data, base)
        columns = [matrix[:, j] for j in range(len(names))]
    else:
        columns = [_values(column, data, base) for column in spec["columns"]]
    if len(columns) != len(names):
        raise ValueError(f"a block names {len(names)} columns and holds {len(columns)}")
    # A dict block's rows are its first column's (``_Encoder._block``): cut the rest to it.
    rows = len(columns[0]) if columns else 0
    return {name: column[:rows] for name, column in zip(names, columns, strict=True)}


def _values(column: list[Any], data: bytes, base: int) -> Any:
    if column[0] == "j":
        return column[1]
    _, char, shape, offset, size = column
    dtype = np.dtype(char)
    array = np.frombuffer(data, dtype=dtype, count=size // dtype.itemsize, offset=base + offset)
    return array.reshape(shape)
