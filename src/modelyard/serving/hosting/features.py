"""Model inputs fetched from the feature store for a deployment's requests.

A deployment with ``FeatureInputs`` answers requests that carry its entity's key and
the model's other inputs; ``FeatureJoin`` validates that part (``request_validator``,
the champion's signature less the fetched inputs, plus the key), fetches the rest for
every row's key, and assembles the model's full input in its signature's order, so
the model, and the inference log after it, see exactly one vector per row.

Features are read as of the server's clock or, where the deployment names an
``event_time`` field, as of each row's event time capped at the clock (a replay or a
stream consumer behind reads what the store held at the event; nothing reads the
future). The field is checked like the others, and must be a finite, non-negative
number of epoch seconds; it reaches the model only if it is one of its inputs.

Reads are batched per event-loop turn (``BatchedReads``): every request waiting to be
completed in a turn shares one read of the online store (one per distinct time, where
rows carry event times). A server reads inline, on the event loop, as it runs fast
models (``hosting.batcher``): a read costs tens of microseconds a key (SQLite in the
page cache, Redis on loopback), less than handing it to a thread and back under the
GIL; ``inline=False`` runs reads on a thread, for a store far away.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from modelyard.errors import ValidationError
from modelyard.registry.signature import FieldSpec, Signature
from modelyard.routing import FeatureInputs
from modelyard.serving.hosting.validation import InputValidator, ModelInput, Prepared
from modelyard.serving.wire.messages import names_list

# The dtype of an entity key column in a request, by the entity's declared dtype.
_KEY_DTYPES = {"string": "object", "int64": "int64"}


@dataclass(frozen=True)
class Fetched:
    """Features for a list of keys: a column per feature input, a value per key, and which
    keys the store knew."""

    columns: dict[str, np.ndarray]
    found: np.ndarray  # bool, one per key


class FeatureReader(Protocol):
    """One read of the online store (blocking): every feature ``inputs`` names, for ``keys``,
    as of ``at`` (epoch seconds)."""

    def __call__(self, keys: Sequence[str], at: float) -> Fetched: ...


class BatchedReads:
    """Shares ``reader`` calls among every fetch made in one event-loop turn.

    A fetch without ``times`` reads as of the clock: when no fetch of the turn has
    times, the turn makes one call. A fetch with ``times`` (one per key, epoch seconds)
    reads each key as of ``min(time, clock)``; the turn's rows are then grouped by that
    time, one call per distinct time, and the answers put back in the rows' order.
    """

    def __init__(
        self,
        reader: FeatureReader,
        loop: asyncio.AbstractEventLoop,
        executor: Executor | None,
        clock: Callable[[], float],
        *,
        inline: bool = False,
    ) -> None:
        self._reader = reader
        self._loop = loop
        self._executor = executor
        self._inline = inline
        self._clock = clock
        self._waiting: list[tuple[list[str], list[float] | None, asyncio.Future[Fetched]]] = []
        self._timed = False  # whether a fetch waiting now has times

    def fetch(self, keys: list[str], times: list[float] | None = None) -> asyncio.Future[Fetched]:
        """The features of ``keys``, as of ``times`` (one per key, capped at the clock) or
        else as of the clock, once this turn's read is done."""
        if times is not None and len(times) != len(keys):
            raise ValueError(f"{len(keys)} keys and {len(times)} times")
        future: asyncio.Future[Fetched] = self._loop.create_future()
        self._waiting.append((keys, times, future))
        self._timed = self._timed or times is not None
        if len(self._waiting) == 1:
            self._loop.call_soon(self._read)
        return future

    def _read(self) -> None:
        waiting, self._waiting = self._waiting, []
        timed, self._timed = self._timed, False
        keys = [key for part, _, _ in waiting for key in part]
        now = self._clock()
        read: Callable[..., Fetched] = self._reader
        args: tuple[Any, ...] = (keys, now)
        if timed:  # else the one call of the fast path, as of the clock
            ats = [
                at
                for part, times, _ in waiting
                for at in ([now] * len(part) if times is None else [min(t, now) for t in times])
            ]
            read, args = _read_as_of, (self._reader, keys, ats, now)
        if self._inline:
            job: asyncio.Future[Fetched] = self._loop.create_future()
            try:
                job.set_result(read(*args))
            except Exception as error:  # handed to every request of the read
                job.set_exception(error)
        else:
            job = self._loop.run_in_executor(self._executor, read, *args)

        def done(finished: asyncio.Future[Fetched]) -> None:
            error = (
                asyncio.CancelledError("the feature read was cancelled")
                if finished.cancelled()
                else finished.exception()
            )
            start = 0
            for part, _, future in waiting:
                if future.done():  # the request gave up
                    start += len(part)
                    continue
                if error is not None:
                    future.set_exception(error)
                    continue
                fetched = finished.result()
                stop = start + len(part)
                future.set_result(
                    Fetched(
                        {name: column[start:stop] for name, column in fetched.columns.items()},
                        fetched.found[start:stop],
                    )
                )
                start = stop

        job.add_done_callback(done)


def _read_as_of(reader: FeatureReader, keys: list[str], ats: list[float], now: float) -> Fetched:
    """``keys`` each as of its own time in ``ats``: one ``reader`` call per distinct time,
    the answers put back in the keys' order."""
    rows: dict[float, list[int]] = {}
    for row, at in enumerate(ats):
        rows.setdefault(at, []).append(row)
    if len(rows) <= 1:
        return reader(keys, ats[0] if ats else now)
    order = np.fromiter((row for group in rows.values() for row in group), np.intp, len(keys))
    parts = [reader([keys[row] for row in group], at) for at, group in rows.items()]
    where = np.empty_like(order)
    where[order] = np.arange(len(order))  # row -> its place in the concatenated answers
    return Fetched(
        {
            name: np.concatenate([part.columns[name] for part in parts])[where]
            for name in parts[0].columns
        },
        np.concatenate([part.found for part in parts])[where],
    )


class FeatureJoin:
    """How one deployment's requests become its model's inputs (see the module docstring)."""

    def __init__(
        self,
        inputs: FeatureInputs,
        signature: Signature,
        entity_key: str,
        entity_dtype: str,
        reads: BatchedReads,
        max_rows: int,
    ) -> None:
        by_name = {spec.name: spec for spec in signature.inputs}
        missing = [name for name in inputs.inputs if name not in by_name]
        if missing:
            raise ValidationError(
                f"features {missing} fill no input of the model; its inputs are "
                f"{names_list(by_name)}"
            )
        fetched = set(inputs.inputs)
        self.entity_key = entity_key
        self._key_in_model = entity_key in by_name
        requested = [spec for spec in signature.inputs if spec.name not in fetched]
        if not self._key_in_model:
            key_dtype = _KEY_DTYPES.get(entity_dtype, "object")
            requested.insert(0, FieldSpec(entity_key, key_dtype))
        self.event_time = inputs.event_time
        self._time_in_model = self.event_time in by_name
        if self.event_time is not None:
            if self.event_time == entity_key:
                raise ValidationError(
                    f"features.event_time {self.event_time!r} is the entity's key; it must "
                    "name another request field"
                )
            if self.event_time in fetched:  # FeatureInputs refuses it; a second guard
                raise ValidationError(
                    f"features.event_time {self.event_time!r} is a fetched feature"
                )
            if self._time_in_model:
                kind = by_name[self.event_time].kind
                if kind not in ("number", "integer"):
                    raise ValidationError(
                        f"features.event_time {self.event_time!r} is a {kind} input of the "
                        "model; an event time is a number (epoch seconds)"
                    )
            else:
                requested.insert(
                    0 if self._key_in_model else 1, FieldSpec(self.event_time, "float64")
                )
        self.request_validator = InputValidator(
            Signature(tuple(requested), layout="columns"), max_rows
        )
        self._signature = signature
        self._by_name = by_name
        self._inputs = inputs
        self._reads = reads
        self._defaults: Mapping[str, Any] = inputs.defaults

    async def complete(self, request: Prepared) -> Prepared:
        """The model's full input for a validated request: its fields, and the features of
        each row's entity (422 naming the first unknown entity, unless defaults apply)."""
        fields = request.model_input
        assert isinstance(fields, dict)
        keys = [str(key) for key in fields[self.entity_key].tolist()]
        if self.event_time is None:
            fetched = await self._reads.fetch(keys)
        else:
            fetched = await self._reads.fetch(keys, self._event_times(fields[self.event_time]))
        columns = dict(fields)
        if not self._key_in_model:
            del columns[self.entity_key]
        if self.event_time is not None and not self._time_in_model:
            del columns[self.event_time]
        if self._inputs.on_missing == "reject" and not fetched.found.all():
            row = int(np.flatnonzero(~fetched.found)[0])
            raise ValidationError(
                f"no features for {self.entity_key} {keys[row]!r} (row {row}); the "
                "feature store has not seen this entity"
            )
        for name in self._inputs.inputs:
            columns[name] = self._filled(name, fetched)
        return Prepared(request.rows, self._assemble(columns))

    def _event_times(self, column: np.ndarray) -> list[float]:
        """Each row's event time, in epoch seconds: finite and not negative, else a 422."""
        times = np.asarray(column, dtype=np.float64)
        bad = ~np.isfinite(times) | (times < 0)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValidationError(
                f"field {self.event_time!r} must be an event time in epoch seconds, finite and "
                f">= 0, got {times[row].item()!r} (row {row})"
            )
        return times.tolist()  # type: ignore[no-any-return]

    def _filled(self, name: str, fetched: Fetched) -> np.ndarray:
        """One feature's column: the store's values, then the default where it had none;
        a null left over is NaN for an input that allows NaN, else a 422."""
        default = self._defaults.get(name)
        values = [
            value if found and value is not None else default
            for value, found in zip(
                fetched.columns[name].tolist(), fetched.found.tolist(), strict=True
            )
        ]
        spec = self._by_name[name]
        if None in values:
            if spec.kind != "number" or not spec.allow_nan:
                raise ValidationError(
                    f"feature {name!r} has no value for some entities and the model's input "
                    f"{name!r} takes no nulls; give the deployment a default for it"
                )
            values = [np.nan if value is None else value for value in values]
        return np.array(values, dtype=object if spec.kind == "string" else spec.dtype)

    def _assemble(self, columns: dict[str, np.ndarray]) -> ModelInput:
        names = [spec.name for spec in self._signature.inputs]
        if self._signature.layout == "matrix":
            dtype = np.dtype(self._signature.inputs[0].dtype)
            return np.column_stack([np.asarray(columns[n], dtype=dtype) for n in names])
        return {name: columns[name] for name in names}
