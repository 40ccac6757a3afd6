"""The Redis Streams consumer against the real Redis: messages pushed and acknowledged
only after the write, a dead consumer's messages taken over, a restart re-reading its
own, bad messages set aside, late events counted, the blocking loop stopped."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
import redis

from modelyard.errors import StoreError
from modelyard.features.definitions import Aggregation, Entity, Feature, FeatureView, StreamSource
from modelyard.features.online.reads import get_online_features
from modelyard.features.online.sqlite import SqliteOnlineStore
from modelyard.features.push import push
from modelyard.features.streams import StreamConsumer, decode_message

T = 1_700_000_000.0
CARD = Entity("card", "card_id")
TXN = StreamSource("txn", fields=(Feature("amount", "float64"), Feature("shop", "string")))
ACTIVITY = FeatureView(
    "activity",
    CARD,
    TXN,
    features=(Feature("amount", "float64"),),
    aggregations=(Aggregation("count", "1h"), Aggregation("sum", "1h", "amount")),
)


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis at 127.0.0.1:6379")
    yield client
    client.close()


@pytest.fixture
def key(client: redis.Redis) -> Iterator[str]:
    name = f"test:{uuid.uuid4().hex}:txn"
    yield name
    client.delete(name, f"{name}:dead")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteOnlineStore]:
    opened = SqliteOnlineStore(tmp_path / "online.sqlite")
    yield opened
    opened.close()


def consumer(
    client: redis.Redis, key: str, store: Any, tmp_path: Path, name: str = "c1", **kwargs: Any
) -> StreamConsumer:
    options: dict[str, Any] = {
        "group": "features",
        "consumer": name,
        "stream": "txn",
        "views": [ACTIVITY],
        "store": store,
        "offline_dir": tmp_path / "offline",
        "allowed_lateness_s": 300.0,
        "clock": lambda: T + 5000,
        "batch_size": 100,
        **kwargs,
    }
    return StreamConsumer(client, key=key, **options)


def add(client: redis.Redis, key: str, card: str, dt: float, amount: float) -> str:
    event = {"card_id": card, "event_time": T + dt, "amount": amount, "shop": "s"}
    return client.xadd(key, {"data": orjson.dumps(event)}).decode()


def offline_ids(tmp_path: Path) -> list[str]:
    files = sorted((tmp_path / "offline" / "txn").glob("*.parquet"))
    return [i for f in files for i in pq.read_table(f)["_event_id"].to_pylist()]


def pending(client: redis.Redis, key: str) -> int:
    return int(client.xpending(key, "features")["pending"])


def test_messages_are_pushed_then_acknowledged(
    client: redis.Redis, key: str, store: SqliteOnlineStore, tmp_path: Path
) -> None:
    reader = consumer(client, key, store, tmp_path)
    ids = [add(client, key, "c1", i, 10.0 * i) for i in range(3)]
    ids.append(
        client.xadd(
            key, {"card_id": "c2", "event_time": str(T + 1), "amount": "2.5", "shop": "t"}
        ).decode()
    )

    done = reader.poll_once()

    assert (done.messages, done.accepted, done.dead) == (4, 4, 0)
    assert pending(client, key) == 0
    assert offline_ids(tmp_path) == ids  # the message ids are the event ids
    got = get_online_features(
        store, [ACTIVITY], ["c1", "c2"], ["activity:count_1h", "activity:amount_sum_1h"], T + 10
    )
    assert got.columns == {"count_1h": [3, 1], "amount_sum_1h": [30.0, 2.5]}
    assert reader.poll_once().messages == 0


def test_a_consumer_that_died_before_writing_is_taken_over(
    client: redis.Redis, key: str, store: SqliteOnlineStore, tmp_path: Path
) -> None:
    class Broken(SqliteOnlineStore):
        def add_events(self, view: str, events: Any) -> int:
            raise StoreError("the online store is away")

    broken = Broken(tmp_path / "online.sqlite")
    dying = consumer(client, key, broken, tmp_path, name="dying")
    for i in range(5):
        add(client, key, "c1", i, 1.0)

    with pytest.raises(StoreError, match="the online store is away"):
        dying.poll_once()
    assert pending(client, key) == 5  # nothing acknowledged

    taker = consumer(client, key, store, tmp_path, name="taker", claim_idle_ms=0)
    done = taker.poll_once()

    assert (done.claimed, done.accepted) == (5, 5)
    assert pending(client, key) == 0
    assert len(offline_ids(tmp_path)) == 5
    broken.close()


def test_a_failed_poll_is_retried_by_the_same_consumer(
    client: redis.Redis, key: str, tmp_path: Path
) -> None:
    class Flaky(SqliteOnlineStore):
        away = True

        def add_events(self, view: str, events: Any) -> int:
            if self.away:
                raise StoreError("the online store is away")
            return super().add_events(view, events)

    flaky = Flaky(tmp_path / "online.sqlite")
    reader = consumer(client, key, flaky, tmp_path, claim_idle_ms=None)
    for i in range(3):
        add(client, key, "c1", i, 1.0)
    with pytest.raises(StoreError, match="away"):
        reader.poll_once()

    flaky.away = False
    done = reader.poll_once()

    assert (done.messages, done.accepted) == (3, 3)
    assert (reader.stats.failures, pending(client, key)) == (1, 0)
    flaky.close()


def test_a_redelivered_message_that_was_already_written_adds_nothing(
    client: redis.Redis, key: str, store: SqliteOnlineStore, tmp_path: Path
) -> None:
    consumer(client, key, store, tmp_path)  # creates the group
    for i in range(4):
        add(client, key, "c1", i, 1.0)
    # a consumer reads and writes, then dies before XACK
    (_, entries), *_ = client.xreadgroup("features", "dead", {key: ">"}, count=10)
    events = [decode_message(i.decode(), f, {"amount": "float64"}) for i, f in entries]
    options: dict[str, Any] = {"offline_dir": tmp_path / "offline", "allowed_lateness_s": 300}
    push("txn", [ACTIVITY], events, store=store, now=T, **options)

    done = consumer(client, key, store, tmp_path, name="taker", claim_idle_ms=0).poll_once()

    assert (done.claimed, done.accepted, done.duplicates) == (4, 0, 4)
    assert pending(client, key) == 0
    assert len(offline_ids(tmp_path)) == 4


def test_a_restarted_consumer_first_rereads_its_own_messages(
    client: redis.Redis, key: str, store: SqliteOnlineStore, tmp_path: Path
) -> None:
    consumer(client, key, store, tmp_path, name="same")
    for i in range(3):
        add(client, key, "c1", i, 1.0)
    client.xreadgroup("features", "same", {key: ">"}, count=10)  # given, then the crash

    restarted = consumer(client, key, store, tmp_path, name="same", claim_idle_ms=None)

    assert restarted.poll_once().accepted == 3
    assert pending(client, key) == 0


def test_bad_messages_are_set_aside_and_the_rest_pushed(
    client: redis.Redis, key: str, store: SqliteOnlineStore, tmp_path: Path
) -> None:
    reader = consumer(client, key, store, tmp_path)
    good = add(client, key, "c1", 0, 1.0)
    not_json = client.xadd(key, {"data": b"{oops"}).decode()
    wrong_type = client.xadd(
        key, {"data": orjson.dumps({"card_id": "c1", "event_time": T, "amount": "x", "shop": "s"})}
    ).decode()
    also_good = add(client, key, "c2", 1, 2.0)

    done = reader.poll_once()

    assert (done.accepted, done.dead) == (2, 2)
    assert offline_ids(tmp_path) == [good, also_good]
    assert pending(client, key) == 0
    letters = client.xrange(f"{key}:dead")
    assert [f[b"_id"].decode() for _, f in letters] == [not_json, wrong_type]
    assert b"not JSON" in letters[0][1][b"_error"]
    assert b"'amount' (float64) must be a number" in letters[1][1][b"_error"]


def test_late_events_are_counted_and_acknowledged(
    client: redis.Redis, key: str, store: SqliteOnlineStore, tmp_path: Path
) -> None:
    reader = consumer(client, key, store, tmp_path)
    add(client, key, "c1", 1000, 1.0)
    reader.poll_once()
    late = add(client, key, "c1", 1000 - 301, 1.0)

    done = reader.poll_once()

    assert (done.accepted, done.too_late, done.late_ids) == (0, 1, [late])
    assert reader.stats.too_late == 1
    assert pending(client, key) == 0


def test_run_consumes_until_stopped(
    client: redis.Redis, key: str, store: SqliteOnlineStore, tmp_path: Path
) -> None:
    reader = consumer(client, key, store, tmp_path, block_ms=50)
    stop = threading.Event()
    thread = threading.Thread(target=reader.run, args=(stop,))
    thread.start()
    try:
        for i in range(250):
            add(client, key, f"c{i % 7}", i, 1.0)
        deadline = time.monotonic() + 20
        while reader.stats.accepted < 250 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)

    assert not thread.is_alive()
    assert reader.stats.accepted == 250
    assert pending(client, key) == 0
