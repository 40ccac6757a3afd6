"""Model inputs fetched from the feature store for a deployment's requests.

A deployment with ``FeatureInputs`` answers requests that carry its entity's key and
the model's other inputs; ``FeatureJoin`` validates that part (``request_validator``,
the champion's signature less the fetched inputs, plus the key), fetches the rest for
every row's key, and assembles the model's full input in its signature's order, so
the model, and the inference log after it, see exactly one vector per row.

Reads are batched per event-loop turn (``BatchedReads``): every request waiting to be
completed in a turn shares one read of the online store. A server reads inline, on the
event loop, as it runs fast models (``hosting.batcher``): a read costs tens of
microseconds a key (SQLite in the page cache, Redis on loopback), less than handing it
to a thread and back under the GIL; ``inline=False`` runs reads on a thread, for a
store far away.
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
    """Shares one ``reader`` call among every fetch made in one event-loop turn."""

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
        self._waiting: list[tuple[list[str], asyncio.Future[Fetched]]] = []

    def fetch(self, keys: list[str]) -> asyncio.Future[Fetched]:
        future: asyncio.Future[Fetched] = self._loop.create_future()
        self._waiting.append((keys, future))
        if len(self._waiting) == 1:
            self._loop.call_soon(self._read)
        return future

    def _read(self) -> None:
        waiting, self._waiting = self._waiting, []
        keys = [key for part, _ in waiting for key in part]
        if self._inline:
            job: asyncio.Future[Fetched] = self._loop.create_future()
            try:
                job.set_result(self._reader(keys, self._clock()))
            except Exception as error:  # handed to every request of the read
                job.set_exception(error)
        else:
            job = self._loop.run_in_executor(self._executor, self._reader, keys, self._clock())

        def done(finished: asyncio.Future[Fetched]) -> None:
            error = (
                asyncio.CancelledError("the feature read was cancelled")
                if finished.cancelled()
                else finished.exception()
            )
            start = 0
            for part, future in waiting:
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
        fetched = await self._reads.fetch(keys)
        columns = dict(fields)
        if not self._key_in_model:
            del columns[self.entity_key]
        if self._inputs.on_missing == "reject" and not fetched.found.all():
            row = int(np.flatnonzero(~fetched.found)[0])
            raise ValidationError(
                f"no features for {self.entity_key} {keys[row]!r} (row {row}); the "
                "feature store has not seen this entity"
            )
        for name in self._inputs.inputs:
            columns[name] = self._filled(name, fetched)
        return Prepared(request.rows, self._assemble(columns))

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
