"""One suite, every online store: the in-memory fake, SQLite, and the real Redis.

The rules of ``features.online.store``: an older event time never overwrites, an equal
one replaces; events are idempotent by id; many keys are one round trip; trims and
watermarks; concurrent writers lose nothing.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelyard.features.online.store import Event, LatestRow

T0 = 1_700_000_000.0
# the `backend` fixture (conftest.py): .name, .store, .round_trips()
Backend = Any


# -- latest rows -----------------------------------------------------------------------


def test_latest_rows_come_back_with_their_types(backend: Backend) -> None:
    values: dict[str, Any] = {
        "count": 3,
        "big": 2**62,
        "amount": 1.0,
        "ratio": 0.1,
        "name": "café ☕",
        "flag": False,
        "missing": None,
    }
    assert backend.store.put_latest("v", [("a", T0 + 0.123456, values)]) == 1

    (row,) = backend.store.get_latest("v", ["a"])

    assert row == LatestRow(T0 + 0.123456, values)
    assert [type(row.values[k]) for k in values] == [int, int, float, float, str, bool, type(None)]


def test_an_older_event_time_never_overwrites(backend: Backend) -> None:
    store = backend.store
    store.put_latest("v", [("a", T0 + 10, {"x": 10})])

    assert store.put_latest("v", [("a", T0 + 5, {"x": 5})]) == 0
    assert store.get_latest("v", ["a"]) == [LatestRow(T0 + 10, {"x": 10})]


def test_an_equal_event_time_replaces(backend: Backend) -> None:
    store = backend.store
    store.put_latest("v", [("a", T0, {"x": 1})])

    assert store.put_latest("v", [("a", T0, {"x": 2})]) == 1
    assert store.get_latest("v", ["a"]) == [LatestRow(T0, {"x": 2})]


def test_a_batch_keeps_the_newest_row_of_each_key_whatever_its_order(backend: Backend) -> None:
    store = backend.store
    written = store.put_latest(
        "v",
        [
            ("a", T0 + 2, {"x": 2}),
            ("a", T0 + 1, {"x": 1}),
            ("b", T0, {"x": 0}),
            ("a", T0 + 3, {"x": 3}),
        ],
    )

    assert written == 3  # a@2, b, a@3; a@1 came after a@2
    assert store.get_latest("v", ["a", "b"]) == [
        LatestRow(T0 + 3, {"x": 3}),
        LatestRow(T0, {"x": 0}),
    ]


def test_missing_keys_are_none_in_the_order_asked(backend: Backend) -> None:
    store = backend.store
    store.put_latest("v", [("b", T0, {"x": 1}), ("d", T0, {"x": 2})])

    found = store.get_latest("v", ["a", "b", "c", "d", "b"])

    assert found == [None, LatestRow(T0, {"x": 1}), None, LatestRow(T0, {"x": 2}), found[1]]
    assert store.get_latest("v", []) == []
    assert store.get_latest("other", ["b"]) == [None]


def test_keys_may_hold_any_text(backend: Backend) -> None:
    keys = ["a:b", "with space", "ünï", "42", "", "x\ny"]
    backend.store.put_latest("v", [(k, T0, {"k": k}) for k in keys])
    backend.store.add_events("v", [Event(k, T0, "e", {"k": k}) for k in keys])

    assert [r.values["k"] if r else None for r in backend.store.get_latest("v", keys)] == keys
    assert [e[0].values["k"] for e in backend.store.get_events("v", keys, T0 - 1)] == keys


def test_views_do_not_share_rows(backend: Backend) -> None:
    backend.store.put_latest("v1", [("a", T0, {"x": 1})])
    backend.store.add_events("v1", [Event("a", T0, "e1", {"x": 1})])

    assert backend.store.get_latest("v2", ["a"]) == [None]
    assert backend.store.get_events("v2", ["a"], 0.0) == [[]]


def test_large_batches_are_written_whole(backend: Backend) -> None:
    rows = [(f"k{i}", T0 + i, {"i": i}) for i in range(5_000)]
    events = [Event(f"k{i % 50}", T0 + i, f"e{i}", {"i": i}) for i in range(5_000)]

    assert backend.store.put_latest("v", rows) == 5_000
    assert backend.store.add_events("v", events) == 5_000
    found = backend.store.get_latest("v", [f"k{i}" for i in range(5_000)])
    assert [r.values["i"] for r in found if r] == list(range(5_000))
    events_back = backend.store.get_events("v", [f"k{i}" for i in range(50)], 0)
    assert sum(len(e) for e in events_back) == 5_000


# -- events ----------------------------------------------------------------------------


def test_events_are_idempotent_by_id(backend: Backend) -> None:
    store = backend.store
    first = [Event("a", T0, "e1", {"x": 1}), Event("a", T0 + 1, "e2", {"x": 2})]

    assert store.add_events("v", first) == 2
    assert store.add_events("v", first) == 0
    # a replay whose values (or time) differ is still the same event: the first one stays
    assert store.add_events("v", [Event("a", T0 + 5, "e1", {"x": 99})]) == 0
    # one batch that repeats an id adds it once
    assert store.add_events("v", [Event("a", T0 + 2, "e3", {}), Event("a", T0 + 2, "e3", {})]) == 1

    (events,) = store.get_events("v", ["a"], T0 - 1)
    assert events == [
        Event("a", T0, "e1", {"x": 1}),
        Event("a", T0 + 1, "e2", {"x": 2}),
        Event("a", T0 + 2, "e3", {}),
    ]


def test_the_same_event_id_under_two_keys_is_two_events(backend: Backend) -> None:
    assert backend.store.add_events("v", [Event("a", T0, "e", {}), Event("b", T0, "e", {})]) == 2


def test_events_since_are_exclusive_oldest_first_ties_by_id(backend: Backend) -> None:
    store = backend.store
    store.add_events(
        "v",
        [
            Event("a", T0 + 3, "z", {"n": 3}),
            Event("a", T0 + 1, "m", {"n": 1}),
            Event("a", T0 + 2, "b", {"n": 2}),
            Event("a", T0 + 2, "a", {"n": 2.5}),
            Event("b", T0 + 9, "q", {"n": None}),
        ],
    )

    a_events, missing, b_events = store.get_events("v", ["a", "nobody", "b"], T0 + 1)

    assert [(e.event_time, e.event_id) for e in a_events] == [
        (T0 + 2, "a"),
        (T0 + 2, "b"),
        (T0 + 3, "z"),
    ]
    assert missing == []
    assert b_events == [Event("b", T0 + 9, "q", {"n": None})]
    assert store.get_events("v", ["a"], float("-inf"))[0][0] == Event("a", T0 + 1, "m", {"n": 1})


def test_trim_forgets_events_at_or_before_the_bound(backend: Backend) -> None:
    store = backend.store
    store.add_events(
        "v",
        [Event(k, T0 + i, f"{k}{i}", {"i": i}) for k in ("a", "b") for i in range(5)],
    )
    store.add_events("other", [Event("a", T0, "keep", {})])

    assert store.trim_events("v", T0 + 2) == 6

    assert [[e.event_id for e in es] for es in store.get_events("v", ["a", "b"], 0)] == [
        ["a3", "a4"],
        ["b3", "b4"],
    ]
    assert len(store.get_events("other", ["a"], 0)[0]) == 1
    assert store.trim_events("v", T0 + 100) == 4
    assert store.get_events("v", ["a", "b"], 0) == [[], []]
    assert store.trim_events("v", T0 + 100) == 0
    # what was trimmed is forgotten: adding it again adds it
    assert store.add_events("v", [Event("a", T0 + 3, "a3", {"i": 3})]) == 1


# -- watermarks ------------------------------------------------------------------------


def test_watermarks_per_view(backend: Backend) -> None:
    store = backend.store
    assert store.watermark("v") is None

    store.set_watermark("v", T0 + 0.5)
    store.set_watermark("w", T0 - 100)

    assert store.watermark("v") == T0 + 0.5
    assert store.watermark("w") == T0 - 100
    store.set_watermark("v", T0 + 60)
    assert store.watermark("v") == T0 + 60


# -- round trips -----------------------------------------------------------------------


def test_many_keys_are_one_round_trip(backend: Backend) -> None:
    store = backend.store
    keys = [f"k{i}" for i in range(100)]
    store.put_latest("v", [(k, T0, {"x": 1}) for k in keys])
    store.add_events("v", [Event(k, T0, "e", {"x": 1}) for k in keys])
    before = backend.round_trips()
    if before is None:
        pytest.skip(f"{backend.name} is in-process: nothing to count")

    latest = store.get_latest("v", keys)
    after_latest = backend.round_trips()
    events = store.get_events("v", keys, T0 - 1)
    after_events = backend.round_trips()

    assert all(latest)
    assert all(len(e) == 1 for e in events)
    assert after_latest == before + 1
    assert after_events == after_latest + 1


def test_latest_and_events_together_are_one_round_trip(real_backend: Backend) -> None:
    store: Any = real_backend.store
    keys = [f"k{i}" for i in range(100)]
    store.put_latest("v", [(k, T0, {"x": 1}) for k in keys])
    store.add_events("v", [Event(k, T0 + 1, "e", {"x": 1}) for k in keys])
    before = real_backend.round_trips()

    latest, events = store.get_latest_and_events("v", keys, T0)

    assert latest == store.get_latest("v", keys)
    assert events == store.get_events("v", keys, T0)
    if real_backend.name == "redis":
        assert real_backend.round_trips() == before + 3  # the combined read, then the two checks


# -- concurrency -----------------------------------------------------------------------


def test_concurrent_writers_lose_nothing(backend: Backend) -> None:
    store = backend.store
    writers, per_writer = 6, 150
    keys = [f"k{i}" for i in range(10)]
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def write(w: int) -> None:
        try:
            start.wait()
            for i in range(per_writer):
                key = keys[i % len(keys)]
                t = T0 + i * writers + w  # every (writer, i) has its own time
                store.put_latest("v", [(key, t, {"w": w, "i": i})])
                store.add_events("v", [Event(key, t, f"{w}-{i}", {"w": w})])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    events = store.get_events("v", keys, 0)
    assert sum(len(e) for e in events) == writers * per_writer
    for key, row in zip(keys, store.get_latest("v", keys), strict=True):
        newest = max(e.event_time for e in events[keys.index(key)])
        assert row is not None
        assert row.event_time == newest


# -- the rule, on random histories -------------------------------------------------------

writes = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 5), st.integers(0, 1_000)),
    min_size=1,
    max_size=30,
)


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=writes, chunk=st.integers(1, 5))
def test_latest_is_the_newest_write_last_among_ties(
    backend: Backend, history: list[tuple[str, int, int]], chunk: int
) -> None:
    view = f"v{uuid.uuid4().hex[:8]}"
    for start in range(0, len(history), chunk):
        batch = history[start : start + chunk]
        backend.store.put_latest(view, [(k, T0 + t, {"n": n}) for k, t, n in batch])

    expected: dict[str, tuple[float, int]] = {}
    for key, t, n in history:
        if key not in expected or T0 + t >= expected[key][0]:
            expected[key] = (T0 + t, n)
    found = backend.store.get_latest(view, ["a", "b", "c"])
    assert {
        k: (r.event_time, r.values["n"]) for k, r in zip("abc", found, strict=True) if r
    } == expected
