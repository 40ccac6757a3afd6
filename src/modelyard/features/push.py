"""Push: events of a stream into the offline store (Parquet) and the online store.

``push`` checks the whole batch first (``events.event_batch``), then sorts each event
(``sort_arrivals``, a pure function): a **duplicate** (an id already stored for its
entity, or repeated in the batch) adds nothing; an event older than the newest one
already seen for its entity by more than ``allowed_lateness_s`` is **too late**: it is
applied neither online nor offline, and the result names it. The rest are
**accepted**: written to one Parquet file under ``<offline_dir>/<stream>/`` (temporary
name, then renamed), then to every online view that reads the stream (latest rows for
plain features, events for aggregations).

What each entity has seen is read, for all the batch's entities in one round trip,
from the stream's **ledger**: the first online view keyed by the stream's key that
has aggregations (its events are the ids already accepted; it is given a latest row
per entity, whose time is the newest event seen), else a view of the stream's own,
``_stream.<name>`` (not a valid view name, so never a user's), which keeps exactly
that. The ledger is the data itself for the common stream, so nothing is stored twice.

Writes go: the other online views, the offline file, the ledger. Until the ledger is
written a retry takes the events again, and every online write is idempotent, so a
failure anywhere before the offline file leaves nothing a retry cannot redo; only a
crash between the file's rename and the ledger's write makes a retry append the
events offline a second time, with the same ``_event_id`` (readers can de-duplicate
on it). On SQLite the read and all the writes are one transaction (a concurrent
pusher of the same events waits, then finds them); on Redis two pushers of the same
events at the same instant may both take them, with the same outcome.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.errors import FeatureViewNotFoundError, ValidationError
from modelyard.features.definitions import Dtype, FeatureView, StreamSource
from modelyard.features.events import EventBatch, event_batch
from modelyard.features.online.keys import key_texts
from modelyard.features.online.store import Event, LatestRow, OnlineStore
from modelyard.features.windows import horizon

CREATED_AT = "_created_at"
EVENT_ID_COLUMN = "_event_id"


def stream_view(stream: str) -> str:
    """The online view that keeps a stream's newest event times and accepted ids when
    none of its views can (see ``ledger_view``)."""
    return f"_stream.{stream}"


def ledger_view(stream: str, online: Iterable[FeatureView], key_column: str) -> str:
    """Where a stream's newest event time per entity and accepted ids are kept: its first
    online view keyed by ``key_column`` that stores events, else ``stream_view``."""
    for view in online:
        if view.aggregations and view.entity.key == key_column:
            return view.name
    return stream_view(stream)


@dataclass(frozen=True)
class LateEvent:
    """An event that arrived too late to be applied."""

    key: str
    event_id: str
    event_time: float
    newest_seen: float  # the entity's newest event time when it arrived


@dataclass(frozen=True)
class PushResult:
    """What a push did: how many events it applied, which it skipped and why."""

    stream: str
    accepted: int
    duplicates: tuple[str, ...] = ()  # ids of events already stored
    too_late: tuple[LateEvent, ...] = ()
    offline_file: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the push endpoint's answer)."""
        return {
            "stream": self.stream,
            "accepted": self.accepted,
            "duplicates": list(self.duplicates),
            "too_late": [
                {
                    "key": late.key,
                    "event_id": late.event_id,
                    "event_time": late.event_time,
                    "newest_seen": late.newest_seen,
                }
                for late in self.too_late
            ],
        }


@dataclass
class Arrivals:
    """Positions of a batch's events by what becomes of them."""

    accepted: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    too_late: list[tuple[int, float]] = field(default_factory=list)  # (position, newest seen)
    newest: dict[str, float] = field(default_factory=dict)  # per key, after the batch


def sort_arrivals(
    keys: Sequence[str],
    times: Sequence[float],
    ids: Sequence[str],
    newest_seen: Mapping[str, float],
    known_ids: Iterable[tuple[str, str]],
    allowed_lateness_s: float,
) -> Arrivals:
    """Each event in arrival order: a duplicate of a known or earlier id, too late (older
    than its entity's newest event so far minus ``allowed_lateness_s``), or accepted.
    Pushing a batch whole or in pieces sorts its events the same way."""
    seen = set(known_ids)
    newest = dict(newest_seen)
    arrivals = Arrivals(newest=newest)
    for position, (key, t, event_id) in enumerate(zip(keys, times, ids, strict=True)):
        if (key, event_id) in seen:
            arrivals.duplicates.append(position)
            continue
        so_far = newest.get(key)
        if so_far is not None and t < so_far - allowed_lateness_s:
            arrivals.too_late.append((position, so_far))
            continue
        seen.add((key, event_id))
        arrivals.accepted.append(position)
        if so_far is None or t > so_far:
            newest[key] = t
    return arrivals


def push(
    stream: StreamSource | str,
    views: Mapping[str, FeatureView] | Iterable[FeatureView],
    events: Any,
    *,
    store: OnlineStore,
    offline_dir: Path,
    now: float,
    allowed_lateness_s: float,
    max_events: int | None = None,
) -> PushResult:
    """Apply ``events`` (a list of dicts, a dict of columns, or a pandas, polars or Arrow
    frame) of ``stream`` to the offline store under ``offline_dir`` and to the online
    views among ``views`` that read it; ``now`` is when the store accepts them (epoch
    seconds, their ``_created_at``).

    A stream no view reads is a ``FeatureViewNotFoundError``; a bad batch a
    ``ValidationError``, before anything is written."""
    source, readers = _stream_and_readers(stream, views)
    batch = check_events(source, readers, events)
    if max_events is not None and len(batch) > max_events:
        raise ValidationError(
            f"a push carries at most {max_events} events, got {len(batch)}: split it"
        )
    online = [v for v in readers if v.online]
    view_keys = {v.name: _view_keys(v, batch) for v in online}
    if not len(batch):
        return PushResult(source.name, 0)

    ledger = ledger_view(source.name, online, batch.key_column)
    transaction = getattr(store, "transaction", None)
    with transaction() if transaction is not None else nullcontext():
        newest_seen, known_ids = _seen(store, ledger, batch)
        arrivals = sort_arrivals(
            batch.keys, batch.times.tolist(), batch.ids, newest_seen, known_ids, allowed_lateness_s
        )
        path = None
        if arrivals.accepted:
            # Until the ledger is written (committed, in a transaction) a retry takes the
            # events again: the offline file goes just before that.
            in_transaction = transaction is not None
            writes = (store, online, ledger, batch, view_keys, arrivals)
            _write_online(*writes, views=True, the_ledger=in_transaction)
            path = append_offline(batch, arrivals.accepted, offline_dir, now)
            if not in_transaction:
                _write_online(*writes, views=False, the_ledger=True)
    return PushResult(
        source.name,
        len(arrivals.accepted),
        tuple(batch.ids[i] for i in arrivals.duplicates),
        tuple(
            LateEvent(batch.keys[i], batch.ids[i], float(batch.times[i]), newest)
            for i, newest in arrivals.too_late
        ),
        path,
    )


def check_events(
    stream: StreamSource | str,
    views: Mapping[str, FeatureView] | Iterable[FeatureView],
    events: Any,
) -> EventBatch:
    """``events`` checked as ``push`` checks them, writing nothing (the stream consumer
    uses it to tell which messages of a refused batch are bad)."""
    source, readers = _stream_and_readers(stream, views)
    key_column, key_dtype = _stream_key(source, readers)
    batch = event_batch(source, key_column, key_dtype, events)
    for view in readers:
        if view.online:
            _view_keys(view, batch)
    return batch


def trim_stream_events(
    store: OnlineStore,
    stream: str,
    views: Iterable[FeatureView],
    *,
    now: float,
    allowed_lateness_s: float,
) -> int:
    """Forget the events of ``stream``'s online views that neither a read as of ``now`` or
    later nor the recognition of a replay still needs (older than the view's largest
    window or the allowed lateness, whichever is longer, plus the allowed lateness);
    the number removed."""
    removed = 0
    for view in views:
        reads_it = isinstance(view.source, StreamSource) and view.source.name == stream
        if reads_it and view.online and view.aggregations:
            keep = max(horizon(view.aggregations), allowed_lateness_s) + allowed_lateness_s
            removed += store.trim_events(view.name, now - keep)
    return removed + store.trim_events(stream_view(stream), now - 2 * allowed_lateness_s)


# -- what the batch is checked against ---------------------------------------------------


def _stream_and_readers(
    stream: StreamSource | str, views: Mapping[str, FeatureView] | Iterable[FeatureView]
) -> tuple[StreamSource, list[FeatureView]]:
    every = list(views.values()) if isinstance(views, Mapping) else list(views)
    name = stream if isinstance(stream, str) else stream.name
    readers = [v for v in every if isinstance(v.source, StreamSource) and v.source.name == name]
    if not readers:
        streams = sorted({v.source.name for v in every if isinstance(v.source, StreamSource)})
        raise FeatureViewNotFoundError(
            f"no feature view reads stream {name!r}; streams that views read: {streams}"
        )
    first = readers[0].source
    assert isinstance(first, StreamSource)
    source = stream if isinstance(stream, StreamSource) else first
    differing = sorted(v.name for v in readers if v.source != source)
    if differing:
        raise ValidationError(
            f"view(s) {differing} define stream {name!r} differently from the one pushed to"
        )
    return source, readers


def _stream_key(source: StreamSource, readers: list[FeatureView]) -> tuple[str, Dtype]:
    """The column that keys the stream's events: the entity key of its views that is not
    one of its fields (views keyed by a field take their key from that field)."""
    fields = {f.name for f in source.fields}
    own = sorted({v.entity.key for v in readers} - fields)
    if len(own) > 1:
        raise ValidationError(
            f"the views reading stream {source.name!r} are keyed by different columns {own}: "
            "a stream has one entity key (other keys must be among its fields)"
        )
    column = own[0] if own else readers[0].entity.key
    dtypes = sorted({v.entity.dtype for v in readers if v.entity.key == column})
    if len(dtypes) > 1:
        raise ValidationError(
            f"the views reading stream {source.name!r} declare key {column!r} as {dtypes}"
        )
    if column in fields:
        return column, next(f.dtype for f in source.fields if f.name == column)
    return column, dtypes[0]


def _view_keys(view: FeatureView, batch: EventBatch) -> list[str]:
    column = view.entity.key
    if column == batch.key_column:
        return batch.keys
    values = batch.columns[column]
    if None in values:
        raise ValidationError(
            f"view {view.name!r} is keyed by {column!r}, which is null in row {values.index(None)}"
        )
    return key_texts(values, column)


# -- reads and writes ---------------------------------------------------------------------


def _seen(
    store: OnlineStore, ledger: str, batch: EventBatch
) -> tuple[dict[str, float], set[tuple[str, str]]]:
    """Each entity's newest event time, and the ids accepted since the batch's oldest
    event, from the ledger in one round trip where the store reads both at once."""
    keys = list(dict.fromkeys(batch.keys))
    since = float(np.nextafter(batch.times.min(), -np.inf))
    both = getattr(store, "get_latest_and_events", None)
    latest: list[LatestRow | None]
    if both is not None:
        latest, events = both(ledger, keys, since)
    else:
        latest, events = store.get_latest(ledger, keys), store.get_events(ledger, keys, since)
    newest = {key: row.event_time for key, row in zip(keys, latest, strict=True) if row}
    return newest, {(e.key, e.event_id) for stored in events for e in stored}


def _newest_rows(keys: list[str], times: list[float], rows: list[int]) -> dict[str, int]:
    """The position of each key's newest event among ``rows``; a tie goes to the later."""
    newest: dict[str, int] = {}
    for i in rows:
        current = newest.get(keys[i])
        if current is None or times[i] >= times[current]:
            newest[keys[i]] = i
    return newest


def _write_view(
    store: OnlineStore,
    view: FeatureView,
    batch: EventBatch,
    keys: list[str],
    arrivals: Arrivals,
    is_ledger: bool,
) -> None:
    times = batch.times.tolist()
    rows = arrivals.accepted
    if view.features or is_ledger:
        # the ledger's latest rows carry the newest time seen even with no plain feature
        names = [f.name for f in view.features]
        columns = [batch.columns[n] for n in names]
        store.put_latest(
            view.name,
            [
                (key, times[i], {n: c[i] for n, c in zip(names, columns, strict=True)})
                for key, i in _newest_rows(keys, times, rows).items()
            ],
        )
    if view.aggregations:
        used = sorted({a.column for a in view.aggregations if a.column is not None})
        everything = len(rows) == len(batch)

        def pick(values: list[Any]) -> list[Any]:
            return values if everything else [values[i] for i in rows]

        values = (
            [
                dict(zip(used, row, strict=True))
                for row in zip(*(pick(batch.columns[n]) for n in used), strict=True)
            ]
            if used
            else [{} for _ in rows]
        )
        store.add_events(
            view.name,
            list(map(Event, pick(keys), pick(times), pick(batch.ids), values)),
        )


def _write_online(
    store: OnlineStore,
    online: list[FeatureView],
    ledger: str,
    batch: EventBatch,
    view_keys: Mapping[str, list[str]],
    arrivals: Arrivals,
    *,
    views: bool,
    the_ledger: bool,
) -> None:
    """Write the accepted events to the online views other than the ledger (``views``),
    to the ledger (``the_ledger``), or both."""
    for view in online:
        is_ledger = view.name == ledger
        if the_ledger if is_ledger else views:
            _write_view(store, view, batch, view_keys[view.name], arrivals, is_ledger)
    if the_ledger and ledger == stream_view(batch.stream.name):
        _write_ledger(store, ledger, batch, arrivals)


def _write_ledger(store: OnlineStore, ledger: str, batch: EventBatch, arrivals: Arrivals) -> None:
    times = batch.times.tolist()
    rows = arrivals.accepted
    newest = _newest_rows(batch.keys, times, rows)
    store.put_latest(ledger, [(key, times[i], {}) for key, i in newest.items()])
    store.add_events(ledger, [Event(batch.keys[i], times[i], batch.ids[i], {}) for i in rows])


_ARROW_TYPES = {
    "int64": "int64",
    "float64": "float64",
    "float32": "float32",
    "string": "string",
    "bool": "bool_",
}


def append_offline(batch: EventBatch, rows: list[int], offline_dir: Path, now: float) -> Path:
    """Write events ``rows`` of ``batch`` as one Parquet file under
    ``<offline_dir>/<stream>/``, named so that lexical order is arrival order; written
    under a temporary name and renamed, so a reader never sees half a file."""
    import pyarrow as pa  # here: it is slow to import, and only pushes need it
    import pyarrow.parquet as pq

    everything = len(rows) == len(batch)

    def pick(values: list[Any]) -> list[Any]:
        return values if everything else [values[i] for i in rows]

    stream = batch.stream
    arrays: dict[str, Any] = {
        batch.key_column: pa.array(pick(batch.key_values), _arrow_type(pa, batch.key_dtype)),
        stream.event_time: pa.array(batch.times if everything else batch.times[rows]),
    }
    for feature in stream.fields:
        if feature.name != batch.key_column:
            arrays[feature.name] = pa.array(
                pick(batch.columns[feature.name]), _arrow_type(pa, feature.dtype)
            )
    arrays[CREATED_AT] = pa.array(np.full(len(rows), float(now)))
    arrays[EVENT_ID_COLUMN] = pa.array(pick(batch.ids), pa.string())
    folder = Path(offline_dir) / stream.name
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns():020d}-{uuid.uuid4().hex}.parquet"
    temporary = folder / f".{name}.tmp"
    try:
        pq.write_table(pa.table(arrays), temporary)
        os.replace(temporary, folder / name)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return folder / name


def _arrow_type(pa: Any, dtype: Dtype) -> Any:
    return getattr(pa, _ARROW_TYPES[dtype])()
