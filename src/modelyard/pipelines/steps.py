"""Steps: plain functions whose result is kept and reused while nothing that made it changes.

``@step`` marks a function as a step; inside a pipeline it is called through
``PipelineContext.run(step, *args, **kwargs)``, anywhere else it is the plain function.
Its cache key (``cache_key``) is a sha256 over the step's name, its code and every
argument's fingerprint (``fingerprints.digest_of``): data by content, files by
content, plain values as canonical JSON, outputs of earlier steps by their digest.

The code is the function's source, unless the step declares ``version``: a step whose
result depends on code outside its body (a helper it calls) declares one and bumps it
when that code changes (Dagster's ``code_version``). A step that reads from outside
its arguments (a table, a stream, "now") declares ``cache=False``: it always runs, and
the steps after it are keyed on the content of what it returned. Caching on a source's
name instead of its content is how Kubeflow Pipelines served stale data
(kubeflow/pipelines#4857).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

__all__ = ["Step", "cache_key", "step"]


@dataclass(frozen=True)
class Step:
    """A function marked as a pipeline step."""

    fn: Callable[..., Any]
    name: str
    version: str | None = None
    cache: bool = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    @property
    def code_digest(self) -> str:
        """What identifies the step's code: its declared version, else its source."""
        if self.version is not None:
            text = f"version:{self.version}"
        else:
            try:
                text = inspect.getsource(self.fn)
            except (OSError, TypeError):  # defined where no source is kept (a REPL)
                text = self.fn.__code__.co_code.hex()
        return hashlib.sha256(text.encode()).hexdigest()


@overload
def step(fn: Callable[..., Any], /) -> Step: ...


@overload
def step(
    *, name: str | None = None, version: str | None = None, cache: bool = True
) -> Callable[[Callable[..., Any]], Step]: ...


def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    version: str | None = None,
    cache: bool = True,
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Mark ``fn`` as a step: ``@step``, or ``@step(version="2")``, ``@step(cache=False)``."""

    def wrap(function: Callable[..., Any]) -> Step:
        return Step(function, name or function.__name__, version, cache)

    return wrap if fn is None else wrap(fn)


def cache_key(
    marked: Step, arguments: Sequence[str], keywords: Mapping[str, str], salt: str = ""
) -> str:
    """The cache key of one call of ``marked``, from its arguments' digests."""
    payload = {
        "step": marked.name,
        "code": marked.code_digest,
        "args": list(arguments),
        "kwargs": dict(sorted(keywords.items())),
        "salt": salt,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
