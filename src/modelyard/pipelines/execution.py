"""Running a training pipeline: its steps cached, the whole run tracked.

A pipeline is a plain function ``pipeline(ctx) -> Candidate``; it calls its steps
through ``ctx.run(step, ...)``, which looks the call up in the step cache, runs it on
a miss and stores what it returned, and records what happened ("computed", "cached",
or "uncached" with the reason). ``run_pipeline`` wraps one call in a tracked run: the
seed (every generator seeded), the code version (the pipeline's and its steps'
digests), the data's fingerprints, the parent run, and one tag per step; a step that
raises ends the run FAILED and surfaces as ``StepFailedError`` naming the step.

The context is passed explicitly, never held in a global "active run", so two
pipelines can run in one process and tests need no reset.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from modelyard.errors import ModelyardError, StepFailedError, ValidationError
from modelyard.pipelines.cache import StepCache
from modelyard.pipelines.fingerprints import Produced, digest_of
from modelyard.pipelines.steps import Step, cache_key
from modelyard.tracking import Run, Tracker

__all__ = ["Candidate", "PipelineContext", "PipelineOutcome", "StepRecord", "run_pipeline"]

Pipeline = Callable[["PipelineContext"], "Candidate"]
# Libraries whose version changes what a step computes: part of every cache key.
_LIBRARIES = ("numpy", "scikit-learn", "lightgbm", "pandas", "modelyard")


@dataclass(frozen=True)
class Candidate:
    """What a training pipeline returns: the model, the features it learnt from (their
    signature and reference profile are registered with it; a sample will do), and
    held-out rows it never saw with their labels, on which the gate compares it with the
    champion."""

    model: Any
    features: Any
    holdout: Any
    holdout_labels: Any
    feature_names: list[str] | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class StepRecord:
    """One step call of a run: computed, served from the cache, or computed and not kept."""

    step: str
    outcome: Literal["computed", "cached", "uncached"]
    seconds: float
    key: str | None = None
    note: str = ""


@dataclass(frozen=True)
class PipelineOutcome:
    run_id: str
    candidate: Candidate
    steps: tuple[StepRecord, ...]
    code_version: str


class PipelineContext:
    """What a pipeline gets: its seed and data window, ``run`` for its steps, and the
    sources the caller hands in (``sources["labelled_log"]``, ``sources["features"]``)."""

    def __init__(
        self,
        *,
        seed: int,
        window_start: float,
        window_end: float,
        cache: StepCache | None = None,
        sources: Mapping[str, Any] | None = None,
        run: Run | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.seed = seed
        self.window_start = window_start
        self.window_end = window_end
        self.sources = dict(sources or {})
        self.steps: list[StepRecord] = []
        self.code: dict[str, str] = {}
        self._cache = cache
        self._run = run
        self._clock = clock
        self._produced = Produced()
        self._salt = _environment()

    def source(self, name: str) -> Any:
        """A source the caller handed in, by name (ValidationError naming the known ones)."""
        if name not in self.sources:
            known = ", ".join(sorted(self.sources)) or "none"
            raise ValidationError(f"this pipeline run has no source {name!r}; it has: {known}")
        return self.sources[name]

    def run(self, step: Step, *args: Any, **kwargs: Any) -> Any:
        """Call ``step`` with these arguments, or reuse its cached result."""
        if not isinstance(step, Step):
            raise ValidationError(
                f"ctx.run takes a function marked @step, got {getattr(step, '__name__', step)!r}"
            )
        self.code[step.name] = step.code_digest
        started = self._clock()
        key = None
        if step.cache and self._cache is not None:
            key = cache_key(
                step,
                [
                    digest_of(a, self._produced, what=f"{step.name} argument {i}")
                    for i, a in enumerate(args)
                ],
                {
                    k: digest_of(v, self._produced, what=f"{step.name} argument {k!r}")
                    for k, v in kwargs.items()
                },
                self._salt,
            )
            hit = self._cache.load(key)
            if hit is not None:
                value, digest = hit
                self._produced.add(value, digest)
                self._record(StepRecord(step.name, "cached", self._clock() - started, key))
                return value
        try:
            value = step.fn(*args, **kwargs)
        except Exception as error:
            text = (
                error.message
                if isinstance(error, ModelyardError)
                else f"{type(error).__name__}: {error}"
            )
            raise StepFailedError(f"step {step.name!r} failed: {text}", step.name) from error
        digest = self._output_digest(value, key, step)
        self._produced.add(value, digest)
        note = ""
        if key is not None and self._cache is not None:
            run_id = None if self._run is None else self._run.id
            note = self._cache.store(key, step.name, value, digest, run_id) or ""
        outcome: Literal["computed", "uncached"] = "uncached" if note or key is None else "computed"
        if not step.cache:
            note = "cache=False: runs every time"
        self._record(StepRecord(step.name, outcome, self._clock() - started, key, note))
        return value

    def _output_digest(self, value: Any, key: str | None, step: Step) -> str:
        try:
            return digest_of(value)
        except ValidationError:
            # Not data (a fitted model): known by the call that made it; an uncached call
            # is unique to this run.
            made_by = (
                key
                or hashlib.sha256(f"{step.name}:{id(value)}:{time.time_ns()}".encode()).hexdigest()
            )
            return hashlib.sha256(f"output-of:{made_by}".encode()).hexdigest()

    def _record(self, record: StepRecord) -> None:
        self.steps.append(record)
        if self._run is not None:
            self._run.set_tag(f"step.{record.step}", record.outcome)
            self._run.log_metric(f"step.{record.step}.seconds", record.seconds)


def run_pipeline(
    pipeline: Pipeline,
    *,
    name: str,
    tracker: Tracker,
    seed: int,
    window_start: float,
    window_end: float,
    cache: StepCache | None = None,
    sources: Mapping[str, Any] | None = None,
    parent_run: str | None = None,
    tags: Mapping[str, Any] | None = None,
) -> PipelineOutcome:
    """Run ``pipeline`` once as a tracked run; StepFailedError if a step (or the
    pipeline itself) raises, with the run marked FAILED."""
    params = {"seed": seed, "window_start": window_start, "window_end": window_end}
    run = tracker.start_run(
        name,
        seed=seed,
        experiment="retraining",
        params=params,
        tags={"pipeline": name, "parent_run": parent_run or "", **(tags or {})},
    )
    ctx = PipelineContext(
        seed=seed,
        window_start=window_start,
        window_end=window_end,
        cache=cache,
        sources=sources,
        run=run,
    )
    try:
        candidate = pipeline(ctx)
        if not isinstance(candidate, Candidate):
            raise StepFailedError(
                f"pipeline {name!r} returned {type(candidate).__name__}, not a Candidate",
                "pipeline",
            )
        run.log_dataset("features", candidate.features)
        run.log_dataset("holdout", candidate.holdout)
        run.log_metrics({k: float(v) for k, v in candidate.metrics.items()})
    except StepFailedError as error:
        run.set_tag("error", error.message)
        run.end("FAILED")
        raise
    except Exception as error:
        text = (
            error.message
            if isinstance(error, ModelyardError)
            else f"{type(error).__name__}: {error}"
        )
        run.set_tag("error", text)
        run.end("FAILED")
        raise StepFailedError(f"pipeline {name!r} failed: {text}", "pipeline") from error
    version = _code_version(pipeline, ctx.code)
    run.set_tag("code_version", version)
    run.end()
    return PipelineOutcome(run.id, candidate, tuple(ctx.steps), version)


def _code_version(pipeline: Pipeline, steps: Mapping[str, str]) -> str:
    try:
        source = inspect.getsource(pipeline)
    except (OSError, TypeError):
        source = getattr(pipeline, "__qualname__", repr(pipeline))
    parts = [source, *(f"{k}={v}" for k, v in sorted(steps.items()))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _environment() -> str:
    versions = [f"python={platform.python_version()}"]
    for library in _LIBRARIES:
        try:
            versions.append(f"{library}={importlib.metadata.version(library)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return ";".join(versions)
