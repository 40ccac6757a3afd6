"""A served model version: loaded from the registry, warmed, and bound to a batcher.

Loading and warming run on a worker thread (``load_version``), never on the
event loop, so a worker keeps answering while a new version comes in. Warming
sends real rows through the same validator and model calls a request uses (a
sample of the training data stored with the version, else placeholder rows): the
first real request then meets no cold caches. Warming also times batches of
1, 2, 4, ... rows up to ``max_batch_size``: the size with the lowest cost per row
becomes this version's batch cap (a 100-tree forest in onnxruntime costs
3.2 us/row at 32 rows but 5 us/row at 64, where its kernel changes strategy),
and the time of such a batch decides whether the model runs on the event loop
or on a thread of its own. A slow model (over ``SLOW_CALL_S`` a call) is warmed
with one call and timed once at its full batch, not ~50 times: warming a
model that takes 2 s a call would otherwise take minutes.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import numpy as np

from modelyard.errors import ModelyardError
from modelyard.registry import LoadedModel, ModelRef, Signature, TypedInputs, load_sample
from modelyard.serving.hosting.batcher import Batcher, BatchObserver, run_mode
from modelyard.serving.hosting.outcomes import Answered, InferenceRecorder, RequestRecord
from modelyard.serving.hosting.policy import AdmissionPolicy, BatchPolicy, best_batch_size
from modelyard.serving.hosting.validation import InputValidator, served_signature
from modelyard.serving.wire.oip import Tensor, tensor_metadata

_WARM_CALLS = 3
_TIMED_ROUNDS = 7
SLOW_CALL_S = 0.25


class VersionSource(Protocol):
    """Where a worker's versions come from (the registry's catalog)."""

    def resolve(self, ref: str | ModelRef) -> tuple[str, int]: ...

    def load(
        self, ref: str, *, trusted: bool = False, intra_op_threads: int = 1
    ) -> LoadedModel: ...

    def profile(self, name: str, version: int) -> dict[str, Any]: ...

    def artifact(self, digest: str, *, name: str | None = None) -> bytes: ...


@dataclass(frozen=True)
class WarmedModel:
    """A version loaded and warmed off the event loop, not yet bound to one."""

    loaded: LoadedModel
    validator: InputValidator
    full_batch_s: float
    load_s: float
    example: dict[str, Any]
    batch_size: int


def warm_records(
    versions: VersionSource, name: str, version: int, signature: Signature, rows: int
) -> list[dict[str, Any]]:
    """``rows`` records to warm a version with: its stored data sample, else placeholders."""
    names = [spec.name for spec in signature.inputs]
    columns: dict[str, np.ndarray] | None = None
    try:
        digest = versions.profile(name, version).get("sample_digest")
        if digest:
            sample = load_sample(versions.artifact(digest, name=f"{name}/{version} sample"))
            columns = sample["feature"]
    except ModelyardError:
        columns = None
    if columns and all(n in columns and len(columns[n]) for n in names):
        available = min(len(columns[n]) for n in names)
        return [{n: _json_value(columns[n][i % available]) for n in names} for i in range(rows)]
    return [
        {spec.name: _placeholder(spec.kind, spec.categories) for spec in signature.inputs}
    ] * rows


def _json_value(value: Any) -> Any:
    item = value.item() if isinstance(value, np.generic) else value
    if isinstance(item, float) and math.isnan(item):
        return None
    if isinstance(item, bytes):
        return item.decode("utf-8", "replace")
    return item


def _placeholder(kind: str, categories: tuple[str, ...] | None) -> Any:
    if kind == "string":
        return categories[0] if categories else ""
    return {"number": 0.0, "integer": 0, "boolean": False}[kind]


def load_version(
    versions: VersionSource,
    name: str,
    version: int,
    *,
    max_rows: int,
    max_batch_size: int,
    trusted: bool,
    intra_op_threads: int,
) -> WarmedModel:
    """Load ``name/version`` and warm it; blocking, for a worker thread."""
    started = time.perf_counter()
    loaded = versions.load(f"{name}/{version}", trusted=trusted, intra_op_threads=intra_op_threads)
    signature = loaded.signature
    if isinstance(loaded.predictor, TypedInputs):
        signature = served_signature(signature, loaded.predictor.input_dtypes())
    validator = InputValidator(signature, max_rows)
    records = warm_records(
        versions, name, version, loaded.signature, max(1, min(max_batch_size, max_rows))
    )
    predict = loaded.predictor.predict_prepared
    one = validator.from_records(records[:1])
    first = time.perf_counter()
    predict(one.model_input)
    slow = time.perf_counter() - first > SLOW_CALL_S
    for _ in range(0 if slow else _WARM_CALLS - 1):
        predict(one.model_input)
    if validator.matrix_datatype is not None:
        flat = [records[0][n] for n in validator.names]
        shape = (1, validator.width)
        validator.from_tensors([Tensor("input", validator.matrix_datatype, shape, flat)])
    sizes = [len(records)] if slow else batch_sizes(len(records))
    inputs = {size: validator.from_records(records[:size]).model_input for size in sizes}
    seconds = _best_times(predict, inputs, 1 if slow else _TIMED_ROUNDS)
    size = best_batch_size(seconds)
    return WarmedModel(
        loaded, validator, seconds[size], time.perf_counter() - started, records[0], size
    )


def batch_sizes(limit: int) -> list[int]:
    """The batch sizes tried at warm-up: powers of two up to ``limit``, and ``limit``."""
    sizes = [1 << i for i in range(limit.bit_length()) if 1 << i < limit]
    return [*sizes, limit]


def _best_times(
    predict: Callable[[Any], Any], inputs: dict[int, Any], rounds: int
) -> dict[int, float]:
    """The fastest of ``rounds`` calls at each size, sizes interleaved so that a moment of
    contention on a shared machine does not favour one size."""
    best = dict.fromkeys(inputs, math.inf)
    for _ in range(rounds):
        for size, model_input in inputs.items():
            started = time.perf_counter()
            predict(model_input)
            best[size] = min(best[size], time.perf_counter() - started)
    return best


class ModelRuntime:
    """One loaded version serving requests on one event loop."""

    def __init__(
        self,
        warmed: WarmedModel,
        *,
        policy: BatchPolicy,
        admission: AdmissionPolicy,
        loop: asyncio.AbstractEventLoop,
        observe: BatchObserver | None,
        lag: Callable[[], float],
        recorder: InferenceRecorder | None = None,
        request_timeout_s: float = math.inf,
    ) -> None:
        loaded = warmed.loaded
        self.name = loaded.name
        self.version = loaded.version
        self.version_text = str(loaded.version)
        self.version_header = self.version_text.encode()
        self.label = f"model {loaded.name!r} version {loaded.version}"
        self.signature = loaded.signature
        # class names answers carry (an image model's labels; none for other models)
        self.labels = () if loaded.signature.image is None else loaded.signature.image.labels
        self.flavour = loaded.predictor.flavour
        self.profile_digest = loaded.profile_digest
        self.validator = warmed.validator
        # Values (rows x fields) one request may declare: its tensors' size is checked first.
        self.max_values = warmed.validator.max_rows * warmed.validator.width
        self.full_batch_s = warmed.full_batch_s
        self.batch_size = warmed.batch_size
        self.load_s = warmed.load_s
        # Each version has threads of its own: one stuck in a model holds up no other.
        new_executor = partial(
            ThreadPoolExecutor, 1, thread_name_prefix=f"model-{loaded.name}-{loaded.version}"
        )
        batcher = partial(
            Batcher,
            loaded.predictor.predict_prepared,
            policy=policy,
            admission=admission,
            loop=loop,
            request_timeout_s=request_timeout_s,
            observe=observe,
            listen=self._announce if recorder is not None else None,
            lag=lag,
        )
        self.batcher = batcher(
            label=self.label,
            executor=new_executor() if run_mode(warmed.full_batch_s) == "thread" else None,
            new_executor=new_executor,
        )
        # Shadow copies run on a batcher of their own, always on a thread, made on first
        # use (``shadow_lane``): a version fast at warm-up may hang on live inputs, and
        # inline on the loop that would stall the primary; its own queue means a slow
        # shadow never queues ahead of the version's primary traffic either.
        self._new_shadow_executor = partial(
            ThreadPoolExecutor, 1, thread_name_prefix=f"shadow-{loaded.name}-{loaded.version}"
        )
        self._new_shadow_batcher = partial(
            batcher, label=f"{self.label} (shadow)", new_executor=self._new_shadow_executor
        )
        self.shadow_batcher: Batcher | None = None
        self._recorder = recorder
        self._input_names = tuple(spec.name for spec in self.signature.inputs)
        # The validator's signature: the dtypes the model takes (``served_signature``).
        self.tensors = tensor_metadata(self.validator.signature, self.validator.matrix_datatype)
        self.example = warmed.example  # one record of the version's own data, for docs
        # Requests between lookup and answer; a replaced version is unloaded only at 0.
        self.active = 0

    def shadow_lane(self) -> Batcher:
        """The batcher that runs shadow copies of this version's requests: on a thread of
        its own, whatever ``mode`` is, with its own queue."""
        if self.shadow_batcher is None:
            self.shadow_batcher = self._new_shadow_batcher(executor=self._new_shadow_executor())
        return self.shadow_batcher

    @property
    def idle(self) -> bool:
        """Nothing queued or running, for requests or shadow copies: safe to unload."""
        lane = self.shadow_batcher
        return self.batcher.idle and (lane is None or lane.idle) and not self.active

    @property
    def mode(self) -> str:
        """``"thread"`` or ``"loop"``: where the model's calls run now."""
        return "thread" if self.batcher.threaded else "loop"

    def _announce(
        self,
        requests: list[tuple[RequestRecord, int, int]],
        model_input: Any,
        outputs: dict[str, np.ndarray],
        seconds: float,
    ) -> None:
        assert self._recorder is not None
        self._recorder.record(
            Answered(
                self.name, self.version, self._input_names, model_input, outputs, requests, seconds
            )
        )

    def close(self) -> None:
        """Release the model's threads, if it has any (the session goes with the object)."""
        self.batcher.close()
        if self.shadow_batcher is not None:
            self.shadow_batcher.close()
