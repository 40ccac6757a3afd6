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
