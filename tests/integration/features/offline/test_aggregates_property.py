"""Aggregations offline equal ``windows.aggregate`` (the online computation) on the same
events: random events with ties, missing values and NaN, labels on window edges."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.features import Aggregation, Entity, FeatureView, FileSource
from modelyard.features.offline import OfflineOptions, get_training_set
from modelyard.features.windows import aggregate

CARD = Entity("card", "card_id", "int64")
AGGREGATIONS = (
    Aggregation("count", "3s"),
    Aggregation("count", "8s"),
    Aggregation("sum", "3s", "amount"),
    Aggregation("sum", "8s", "items"),
    Aggregation("mean", "8s", "amount"),
    Aggregation("min", "3s", "amount"),
    Aggregation("max", "8s", "items"),
    Aggregation("distinct", "8s", "merchant"),
    Aggregation("distinct", "3s", "amount"),
    Aggregation("time_since_last", "8s"),
)
# key, time, created lag, amount (None: missing), items, merchant (None: missing)
Event = tuple[int, int, int, float | None, int, str | None]
OFFSETS = [-8.0, -3.0, -0.5, 0.0, 0.5, 1.0, 3.0, 8.0]

amounts = st.one_of(
    st.none(), st.just(math.nan), st.sampled_from([0.0, -0.0, 1.5, 2.0, -3.25, 10.0])
)
events_strategy = st.lists(
    st.tuples(
        st.integers(1, 2),
        st.integers(0, 20),
        st.sampled_from([0, 2, -1, 5]),
        amounts,
        st.integers(-5, 5),
        st.sampled_from([None, "a", "b", "c"]),
    ),
    max_size=40,
)


@st.composite
def scenario(draw: st.DrawFn) -> tuple[list[Event], list[tuple[int, float]]]:
    events = draw(events_strategy)
    labels = []
    for _ in range(draw(st.integers(1, 20))):
        if events and draw(st.integers(0, 3)):
            key, ts = draw(st.sampled_from(events))[:2]
            labels.append((key, ts + draw(st.sampled_from(OFFSETS))))
        else:
            labels.append((draw(st.integers(1, 3)), draw(st.integers(-2, 44)) / 2))
    return events, labels


def online(events: list[Event], key: int, t: float, guard: bool) -> dict[str, Any]:
    """What the online side computes for (key, t): ``windows.aggregate`` over the entity's
    events that exist by then (with the guard, those created at or before ``t``)."""
    mine = [e for e in events if e[0] == key and (not guard or e[1] + e[2] <= t)]
    times = np.array([float(e[1]) for e in mine], dtype=np.float64)
    columns = {
        "amount": np.array([np.nan if e[3] is None else e[3] for e in mine], dtype=np.float64),
        "items": np.array([e[4] for e in mine], dtype=np.int64),
        "merchant": np.array([e[5] for e in mine], dtype=object),
    }
    return aggregate(times, columns, AGGREGATIONS, t)


@pytest.mark.parametrize("guard", [True, False])
@settings(max_examples=50)
@given(data=scenario())
def test_offline_aggregates_equal_the_online_ones(
    guard: bool, data: tuple[list[Event], list[tuple[int, float]]]
) -> None:
    events, labels = data
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pq.write_table(
            pa.table(
                {
                    "card_id": pa.array([e[0] for e in events], pa.int64()),
                    "ts": pa.array([float(e[1]) for e in events], pa.float64()),
                    "created": pa.array([float(e[1] + e[2]) for e in events], pa.float64()),
                    "amount": pa.array([e[3] for e in events], pa.float64()),
                    "items": pa.array([e[4] for e in events], pa.int64()),
                    "merchant": pa.array([e[5] for e in events], pa.string()),
                }
            ),
            folder / "events.parquet",
        )
        view = FeatureView(
            "card_stats",
            CARD,
            FileSource(str(folder / "events.parquet"), "ts", "created"),
            aggregations=AGGREGATIONS,
        )
        frame = pa.table(
            {
                "card_id": pa.array([k for k, _ in labels], pa.int64()),
                "event_timestamp": pa.array([t for _, t in labels], pa.float64()),
            }
        )
        refs = [f"card_stats:{a.feature_name}" for a in AGGREGATIONS]
        options = OfflineOptions(temp_dir=folder / "spill", leakage_guard=guard)
        out = get_training_set(frame, refs, [view], options=options)

    offline = out.to_pylist()
    for row, (key, t) in zip(offline, labels, strict=True):
        want = online(events, key, t, guard)
        for name, value in want.items():
            got = row[name]
            if value is None:
                assert got is None, (name, key, t)
            else:
                assert got == pytest.approx(value, rel=1e-12, abs=1e-12), (name, key, t)
