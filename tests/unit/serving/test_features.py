"""Model inputs fetched from the feature store: one read per loop turn, the full vector
assembled in the signature's order, unknown entities answered as the deployment says."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from modelyard.errors import ValidationError
from modelyard.registry.signature import FieldSpec, Signature
from modelyard.routing import FeatureInputs
from modelyard.serving.hosting.features import BatchedReads, FeatureJoin, Fetched

SIGNATURE = Signature(
    inputs=(FieldSpec("amount", "float32"), FieldSpec("count_1h", "float32"),
            FieldSpec("amount_sum_1h", "float32", allow_nan=True)),
    outputs=(FieldSpec("label", "int64"),),
    layout="matrix",
)  # fmt: skip
KNOWN = {"c1": (3, 30.0), "c2": (1, None)}


class Reader:
    """The online store's answer for known cards; counts its calls."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, keys: Sequence[str], at: float) -> Fetched:
        self.calls.append(list(keys))
        found = np.array([k in KNOWN for k in keys])
        count = np.array([KNOWN[k][0] if k in KNOWN else None for k in keys], dtype=object)
        total = np.array([KNOWN[k][1] if k in KNOWN else None for k in keys], dtype=object)
        return Fetched({"count_1h": count, "amount_sum_1h": total}, found)


def join(
    reader: Reader, loop: asyncio.AbstractEventLoop, *, inline: bool = True, **inputs: Any
) -> FeatureJoin:
    refs = FeatureInputs(("card_stats:count_1h", "card_stats:amount_sum_1h"), **inputs)
    reads = BatchedReads(reader, loop, None, lambda: 1_000.0, inline=inline)
    return FeatureJoin(refs, SIGNATURE, "card_id", "string", reads, max_rows=100)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.mark.parametrize("inline", [True, False])
def test_requests_of_one_turn_share_one_read_and_get_their_own_rows(inline: bool) -> None:
    reader = Reader()

    async def scenario() -> list[np.ndarray]:
        features = join(reader, asyncio.get_running_loop(), inline=inline)
        validator = features.request_validator
        first = validator.from_records([{"card_id": "c1", "amount": 5.0}])
        second = validator.from_records(
            [{"card_id": "c2", "amount": 7.0}, {"card_id": "c1", "amount": 1.0}]
        )
        done = await asyncio.gather(features.complete(first), features.complete(second))
        return [p.model_input for p in done]

    one, two = run(scenario())
    assert reader.calls == [["c1", "c2", "c1"]]
    np.testing.assert_array_equal(one, np.array([[5.0, 3.0, 30.0]], dtype=np.float32))
    np.testing.assert_array_equal(
        two, np.array([[7.0, 1.0, np.nan], [1.0, 3.0, 30.0]], dtype=np.float32)
    )


def test_an_unknown_entity_is_refused_naming_it_unless_defaults_apply() -> None:
    async def scenario(**inputs: Any) -> Any:
        features = join(Reader(), asyncio.get_running_loop(), **inputs)
        request = features.request_validator.from_records(
            [{"card_id": "c1", "amount": 5.0}, {"card_id": "nope", "amount": 2.0}]
        )
        return (await features.complete(request)).model_input

    with pytest.raises(ValidationError, match=r"no features for card_id 'nope' \(row 1\)"):
        run(scenario())
    filled = run(scenario(on_missing="defaults", defaults={"count_1h": 0}))
    np.testing.assert_array_equal(filled[1], np.array([2.0, 0.0, np.nan], dtype=np.float32))
    with pytest.raises(ValidationError, match="'count_1h' takes no nulls"):
        run(scenario(on_missing="defaults"))


def test_the_request_carries_the_key_and_the_other_inputs_only() -> None:
    async def scenario() -> None:
        features = join(Reader(), asyncio.get_running_loop())
        assert features.request_validator.names == ["card_id", "amount"]
        with pytest.raises(ValidationError, match="missing field"):
            features.request_validator.from_records([{"amount": 5.0}])

    run(scenario())


def test_a_feature_that_fills_no_input_is_refused() -> None:
    async def scenario() -> None:
        reads = BatchedReads(Reader(), asyncio.get_running_loop(), None, lambda: 0.0)
        with pytest.raises(ValidationError, match=r"features \['f9'\] fill no input"):
            FeatureJoin(FeatureInputs(("v:f9",)), SIGNATURE, "card_id", "string", reads, 10)

    run(scenario())


class TimedReader:
    """Answers each key with the time it was read as of; records every call."""

    def __init__(self, fail_at: float | None = None) -> None:
        self.calls: list[tuple[list[str], float]] = []
        self.fail_at = fail_at

    def __call__(self, keys: Sequence[str], at: float) -> Fetched:
        self.calls.append((list(keys), at))
        if at == self.fail_at:
            raise RuntimeError(f"the store is down at {at:g}")
        seen = np.array([at] * len(keys), dtype=object)
        return Fetched(
            {"seen": seen, "key": np.array(keys, dtype=object)}, np.ones(len(keys), bool)
        )


def gather_fetches(
    reader: TimedReader, fetches: list[tuple[list[str], list[float] | None]], *, inline: bool
) -> list[Fetched]:
    async def scenario() -> list[Fetched]:
        reads = BatchedReads(
            reader, asyncio.get_running_loop(), None, lambda: 1_000.0, inline=inline
        )
        return list(await asyncio.gather(*(reads.fetch(k, t) for k, t in fetches)))

    return list(run(scenario()))


@pytest.mark.parametrize("inline", [True, False])
def test_rows_with_times_are_read_once_per_distinct_time_and_answered_in_order(
    inline: bool,
) -> None:
    reader = TimedReader()
    one, two = gather_fetches(
        reader,
        [(["a", "b", "c"], [900.0, 800.0, 900.0]), (["d", "e"], [800.0, 5_000.0])],
        inline=inline,
    )
    assert reader.calls == [(["a", "c"], 900.0), (["b", "d"], 800.0), (["e"], 1_000.0)]
    assert one.columns["key"].tolist() == ["a", "b", "c"]
    assert one.columns["seen"].tolist() == [900.0, 800.0, 900.0]
    assert two.columns["key"].tolist() == ["d", "e"]
    assert two.columns["seen"].tolist() == [800.0, 1_000.0]  # the future is read as of now
    assert one.found.tolist() == [True] * 3
    assert two.found.tolist() == [True] * 2


def test_rows_without_times_read_as_of_the_clock_in_one_call() -> None:
    reader = TimedReader()
    gather_fetches(reader, [(["a"], None), (["b", "c"], None)], inline=True)
    assert reader.calls == [(["a", "b", "c"], 1_000.0)]
    reader = TimedReader()
    mixed, _ = gather_fetches(reader, [(["a"], None), (["b"], [1_000.0])], inline=True)
    assert reader.calls == [(["a", "b"], 1_000.0)]  # one distinct time: still one call
    assert mixed.columns["seen"].tolist() == [1_000.0]


@pytest.mark.parametrize("inline", [True, False])
def test_a_failed_read_at_one_time_fails_every_request_of_the_turn(inline: bool) -> None:
    reader = TimedReader(fail_at=800.0)

    async def scenario() -> list[Any]:
        loop = asyncio.get_running_loop()
        reads = BatchedReads(reader, loop, None, lambda: 1_000.0, inline=inline)
        gave_up = reads.fetch(["z"], [700.0])
        gave_up.cancel()
        fetches = [gave_up, reads.fetch(["a"], [900.0]), reads.fetch(["b"], [800.0])]
        return list(await asyncio.gather(*fetches, return_exceptions=True))

    cancelled, first, second = run(scenario())
    assert isinstance(cancelled, asyncio.CancelledError)
    for outcome in (first, second):
        assert isinstance(outcome, RuntimeError)
        assert "the store is down at 800" in str(outcome)


TIMED = Signature(
    inputs=(FieldSpec("amount", "float64"), FieldSpec("count_1h", "float64"),
            FieldSpec("ts", "int64")),
    outputs=(FieldSpec("label", "int64"),),
    layout="columns",
)  # fmt: skip


def timed_join(reader: TimedReader, signature: Signature, event_time: str) -> FeatureJoin:
    inputs = FeatureInputs(("card_stats:count_1h",), event_time=event_time)
    reads = BatchedReads(reader, asyncio.get_running_loop(), None, lambda: 1_000.0, inline=True)
    return FeatureJoin(inputs, signature, "card_id", "string", reads, max_rows=100)


class SeenReader(TimedReader):
    """A reader whose ``count_1h`` is the time it was read as of."""

    def __call__(self, keys: Sequence[str], at: float) -> Fetched:
        fetched = super().__call__(keys, at)
        return Fetched({"count_1h": fetched.columns["seen"]}, fetched.found)


def test_each_row_is_read_as_of_its_event_time_kept_only_if_the_model_takes_it() -> None:
    async def scenario() -> tuple[list[str], list[str], Any, Any]:
        reader = SeenReader()
        dropped = timed_join(reader, TIMED, "event_ts")
        kept = timed_join(reader, TIMED, "ts")
        rows = [
            {"card_id": "c1", "amount": 5.0, "ts": 1, "event_ts": 900.5},
            {"card_id": "c2", "amount": 7.0, "ts": 2, "event_ts": 2e9},
        ]
        first = await dropped.complete(dropped.request_validator.from_records(rows))
        kept_rows = [{k: v for k, v in r.items() if k != "event_ts"} for r in rows]
        second = await kept.complete(
            kept.request_validator.from_records([dict(r, ts=800) for r in kept_rows])
        )
        names = (dropped.request_validator.names, kept.request_validator.names)
        return *names, first.model_input, second.model_input

    dropped_names, kept_names, dropped, kept = run(scenario())
    assert dropped_names == ["card_id", "event_ts", "amount", "ts"]
    assert kept_names == ["card_id", "amount", "ts"]
    assert sorted(dropped) == ["amount", "count_1h", "ts"]
    assert dropped["count_1h"].tolist() == [900.5, 1_000.0]  # capped at the clock
    assert kept["ts"].tolist() == [800, 800]
    assert kept["count_1h"].tolist() == [800.0, 800.0]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, r"field 'event_ts' must not be null/NaN \(row 1\)"),
        ("soon", r"field 'event_ts' must be a number, got 'soon' \(row 1\)"),
        (float("nan"), r"field 'event_ts' must be an event time .* got nan \(row 1\)"),
        (float("inf"), r"field 'event_ts' must be an event time .* got inf \(row 1\)"),
        (-1.0, r"field 'event_ts' must be an event time .*>= 0, got -1.0 \(row 1\)"),
    ],
)
def test_a_bad_or_missing_event_time_is_refused_naming_the_field(
    value: object, message: str
) -> None:
    async def scenario(second: dict[str, Any]) -> None:
        features = timed_join(SeenReader(), TIMED, "event_ts")
        first = {"card_id": "c1", "amount": 5.0, "ts": 1, "event_ts": 900.0}
        prepared = features.request_validator.from_records([first, second])
        await features.complete(prepared)

    row = {"card_id": "c1", "amount": 5.0, "ts": 1, "event_ts": value}
    with pytest.raises(ValidationError, match=message):
        run(scenario(row))
    del row["event_ts"]
    with pytest.raises(ValidationError, match=r"missing field\(s\) 'event_ts' \(row 1\)"):
        run(scenario(row))


def test_an_event_time_that_is_the_key_or_a_text_input_is_refused() -> None:
    text = Signature(
        inputs=(FieldSpec("count_1h", "float64"), FieldSpec("when", "object")), layout="columns"
    )

    async def scenario() -> None:
        with pytest.raises(ValidationError, match="event_time 'card_id' is the entity's key"):
            timed_join(SeenReader(), TIMED, "card_id")
        with pytest.raises(ValidationError, match="event_time 'when' is a string input"):
            timed_join(SeenReader(), text, "when")

    run(scenario())
