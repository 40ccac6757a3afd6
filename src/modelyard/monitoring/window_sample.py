"""A uniform sample of a window's rows, bounded in size, drawn part by part.

Drift and the other row-level figures need rows, not counts; a long window's rows
do not fit in memory. ``RowSample`` keeps at most ``size`` rows per version, drawn
uniformly without replacement over the whole window (every part, not the newest
rows): each row draws a random key and the ``size`` smallest keys are kept (bottom-k
sampling), so the memory is ``size`` rows plus one part whatever the window's
length. A version with at most ``size`` rows keeps all of them, in the window's
time order, so a short window is measured on exactly the rows it had before.

In the sample every row is its own request: the request-level arrays (``ts``,
``version``, ``status``, ...) are those of the row's request.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard.monitoring.window import Window, empty_window

# Rows per version: ten times the reference sample stored at registration (5,000 rows),
# so the live side's noise stays well under the reference's.
SAMPLE_ROWS = 50_000


class RowSample:
    """At most ``size`` rows per version of a window, uniform over every part added."""

    def __init__(self, size: int = SAMPLE_ROWS, rng: np.random.Generator | int = 0) -> None:
        if size < 1:
            raise ValueError(f"a row sample holds at least 1 row, got size={size}")
        self.size = size
        self._rng = np.random.default_rng(rng)
        self._kept: dict[int, tuple[Window, npt.NDArray[np.float64], npt.NDArray[np.int64]]] = {}
        self._seen = 0  # rows added so far: each row's place in the window, for the order

    def add(self, part: Window) -> None:
        """Draw from one part of the window (rows not seen in any other part)."""
        if not part.rows:
            return
        rows = _per_row(part)
        keys = self._rng.random(part.rows)
        order = np.arange(self._seen, self._seen + part.rows, dtype=np.int64)
        self._seen += part.rows
        for version in np.unique(rows.version).tolist():
            mine = rows.version == version
            sample, drawn, place = rows.select(mine), keys[mine], order[mine]
            known = self._kept.get(version)
            if known is not None:
                sample = _concat(known[0], sample)
                drawn = np.concatenate([known[1], drawn])
                place = np.concatenate([known[2], place])
            if sample.rows > self.size:
                chosen = np.zeros(sample.rows, dtype=bool)
                chosen[np.argpartition(drawn, self.size)[: self.size]] = True
                sample, drawn, place = sample.select(chosen), drawn[chosen], place[chosen]
            self._kept[version] = (sample, drawn, place)

    def window(self, deployment: str, start: float, end: float) -> Window:
        """The sampled rows of every version, in time order (then the window's order)."""
        if not self._kept:
            return empty_window(deployment, start, end)
        parts = [self._kept[version] for version in sorted(self._kept)]
        joined = parts[0][0]
        for sample, _, _ in parts[1:]:
            joined = _concat(joined, sample)
        order = np.concatenate([p[2] for p in parts])
        ranked = np.lexsort((order, joined.ts))
        ordered = _take(joined, ranked)
        return Window(
            deployment=deployment,
            start=start,
            end=end,
            request_ids=ordered.request_ids,
            ts=ordered.ts,
            version=ordered.version,
            arm=ordered.arm,
            status=ordered.status,
            latency_ms=ordered.latency_ms,
            row_request=ordered.row_request,
            inputs=ordered.inputs,
            outputs=ordered.outputs,
            labels=ordered.labels,
        )


def _per_row(part: Window) -> Window:
    """``part`` with one request per row (that row's request's fields)."""
    at = part.row_request
    return Window(
        deployment=part.deployment,
        start=part.start,
        end=part.end,
        request_ids=part.request_ids[at],
        ts=part.ts[at],
        version=part.version[at],
        arm=part.arm[at],
        status=part.status[at],
        latency_ms=part.latency_ms[at],
        row_request=np.arange(part.rows, dtype=np.int64),
        inputs=part.inputs,
        outputs=part.outputs,
        labels=part.labels,
    )


def _take(window: Window, order: npt.NDArray[np.int64]) -> Window:
    """A one-request-per-row window's rows in ``order``."""
    return Window(
        deployment=window.deployment,
        start=window.start,
        end=window.end,
        request_ids=window.request_ids[order],
        ts=window.ts[order],
        version=window.version[order],
        arm=window.arm[order],
        status=window.status[order],
        latency_ms=window.latency_ms[order],
        row_request=np.arange(len(order), dtype=np.int64),
        inputs={k: v[order] for k, v in window.inputs.items()},
        outputs={k: v[order] for k, v in window.outputs.items()},
        labels=None if window.labels is None else window.labels[order],
    )


def _concat(first: Window, second: Window) -> Window:
    """Two one-request-per-row windows, one after the other."""
    return Window(
        deployment=first.deployment,
        start=first.start,
        end=first.end,
        request_ids=np.concatenate([first.request_ids, second.request_ids]),
        ts=np.concatenate([first.ts, second.ts]),
        version=np.concatenate([first.version, second.version]),
        arm=np.concatenate([first.arm, second.arm]),
        status=np.concatenate([first.status, second.status]),
        latency_ms=np.concatenate([first.latency_ms, second.latency_ms]),
        row_request=np.arange(first.rows + second.rows, dtype=np.int64),
        inputs=_columns(first.inputs, first.rows, second.inputs, second.rows),
        outputs=_columns(first.outputs, first.rows, second.outputs, second.rows),
        labels=_labels(first, second),
    )


def _labels(first: Window, second: Window) -> npt.NDArray[Any] | None:
    if first.labels is None and second.labels is None:
        return None
    return np.concatenate(
        [_or_none(first.labels, first.rows), _or_none(second.labels, second.rows)]
    )


def _or_none(values: npt.NDArray[Any] | None, rows: int) -> npt.NDArray[Any]:
    return np.full(rows, None, dtype=object) if values is None else values.astype(object)


def _columns(
    first: dict[str, npt.NDArray[Any]],
    rows_first: int,
    second: dict[str, npt.NDArray[Any]],
    rows_second: int,
) -> dict[str, npt.NDArray[Any]]:
    """Columns one after the other; a column one side lacks is NaN there (None if not
    numeric), as ``storage.read_window`` fills a record that lacks it."""
    joined = {}
    for name in dict.fromkeys([*first, *second]):
        a, b = first.get(name), second.get(name)
        shape = (a if a is not None else b).shape[1:]  # type: ignore[union-attr]
        numeric = all(x is None or x.dtype.kind in "biuf" for x in (a, b))
        if a is not None and b is not None and _joinable(a, b, numeric=numeric):
            joined[name] = np.concatenate([a, b])
            continue
        if numeric and (a is None or b is None):
            fill = [np.full((n, *shape), np.nan) if x is None else x.astype(np.float64)
                    for x, n in ((a, rows_first), (b, rows_second))]  # fmt: skip
            joined[name] = np.concatenate(fill)
            continue
        values: list[Any] = []
        for x, n in ((a, rows_first), (b, rows_second)):
            values += [None] * n if x is None else x.tolist()
        array = np.empty(len(values), dtype=object)
        for number, value in enumerate(values):  # one by one: a value may be a list
            array[number] = value
        joined[name] = array
    return joined


def _joinable(a: npt.NDArray[Any], b: npt.NDArray[Any], *, numeric: bool) -> bool:
    """Whether two columns concatenate as they are (numbers, or one non-object dtype)."""
    same_dtype = a.dtype.kind != "O" and a.dtype == b.dtype
    return a.shape[1:] == b.shape[1:] and (numeric or same_dtype)
