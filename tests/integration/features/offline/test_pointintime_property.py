"""The point-in-time join against a brute-force reading of its definition, on random data.

Times on a coarse grid (so ties are common), labels on half-steps (so a label often
sits exactly on an event time or a TTL edge), created times before and after the
event time or missing, entities without any row, rows split over two files (so the
read order spans files), with and without the leakage guard.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.features import Entity, Feature, FeatureView, FileSource
from modelyard.features.offline import OfflineOptions, get_training_set

CARD = Entity("card", "card_id", "int64")
Row = tuple[int, int, int, bool]  # key, event time, created lag, created missing


def brute_force(
    rows: list[Row],
    key: int,
    t: float | None,
    ttl: float | None,
    with_created: bool,
    guard: bool,
) -> int | None:
    """The index of the row ``definitions`` says a label (key, t) gets, by trying all."""
    if t is None:
        return None
    best: tuple[tuple[float, float, int], int] | None = None
    for order, (row_key, ts, lag, no_created) in enumerate(rows):
        created = float(ts) if not with_created or no_created else float(ts + lag)
        if row_key != key or ts > t:
            continue
        if ttl is not None and not ts > t - ttl:
            continue
        if guard and with_created and created > t:
            continue
        rank = (float(ts), created, order)
        if best is None or rank > best[0]:
            best = (rank, order)
    return None if best is None else best[1]


def write_rows(folder: Path, rows: list[Row], split: int, with_created: bool) -> None:
    """``rows[:split]`` to a.parquet and the rest to b.parquet (read in that order)."""
    for name, part, first in (("a", rows[:split], 0), ("b", rows[split:], split)):
        columns = {
            "card_id": pa.array([r[0] for r in part], pa.int64()),
            "ts": pa.array([float(r[1]) for r in part], pa.float64()),
            "row": pa.array(range(first, first + len(part)), pa.int64()),
            "seen": pa.array([float(r[1]) for r in part], pa.float64()),
        }
        if with_created:
            columns["created"] = pa.array(
                [None if r[3] else float(r[1] + r[2]) for r in part], pa.float64()
            )
        pq.write_table(pa.table(columns), folder / f"{name}.parquet")


rows_strategy = st.lists(
    st.tuples(
        st.integers(1, 2), st.integers(0, 12), st.sampled_from([2, -3, 0, 1, 4, 6]), st.booleans()
    ),
    max_size=30,
)
OFFSETS = [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0]


@st.composite
def scenario(draw: st.DrawFn) -> tuple[list[Row], list[tuple[int, float | None]]]:
    """Rows, and labels mostly near a row's time (on it, just after, at a TTL edge),
    some anywhere, some for an entity without rows, some without a time."""
    rows = draw(rows_strategy)
    labels: list[tuple[int, float | None]] = []
    for _ in range(draw(st.integers(1, 25))):
        if rows and draw(st.integers(0, 3)):
            key, ts, _, _ = draw(st.sampled_from(rows))
            labels.append((key, ts + draw(st.sampled_from(OFFSETS))))
        else:
            key = draw(st.integers(1, 3))  # 3: an entity with no rows
            labels.append(
                (key, draw(st.one_of(st.none(), st.integers(-2, 28).map(lambda h: h / 2))))
            )
    return rows, labels


@pytest.mark.parametrize(
    ("with_created", "guard"), [(True, True), (True, False), (False, True), (False, False)]
)
@settings(max_examples=50)
@given(
    data=scenario(),
    ttl=st.sampled_from([None, 1.0, 2.5, 4.0]),
    split=st.integers(0, 30),
)
def test_the_join_matches_brute_force(
    with_created: bool,
    guard: bool,
    data: tuple[list[Row], list[tuple[int, float | None]]],
    ttl: float | None,
    split: int,
) -> None:
    rows, labels = data
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_rows(folder, rows, min(split, len(rows)), with_created)
        view = FeatureView(
            "tx",
            CARD,
            FileSource(str(folder / "*.parquet"), "ts", "created" if with_created else None),
            features=[Feature("row", "int64"), Feature("seen", "float64")],
            ttl=ttl,
        )
        frame = pa.table(
            {
                "card_id": pa.array([k for k, _ in labels], pa.int64()),
                "event_timestamp": pa.array([t for _, t in labels], pa.float64()),
            }
        )
        options = OfflineOptions(temp_dir=folder / "spill", leakage_guard=guard)
        out = get_training_set(frame, ["tx:row", "tx:seen"], [view], options=options)

    assert out.column_names == ["card_id", "event_timestamp", "row", "seen"]
    assert out.column("card_id").to_pylist() == [k for k, _ in labels]
    got = out.column("row").to_pylist()
    want = [brute_force(rows, k, t, ttl, with_created, guard) for k, t in labels]
    assert got == want
    for (_, t), seen in zip(labels, out.column("seen").to_pylist(), strict=True):
        assert seen is None or (t is not None and seen <= t)


times = st.floats(0, 1000, allow_nan=False).map(lambda x: round(x, 3))


@settings(max_examples=40)
@given(
    events=st.lists(st.tuples(st.integers(1, 5), times, st.floats(0, 50)), max_size=60),
    labels=st.lists(st.tuples(st.integers(1, 6), times), min_size=1, max_size=40),
    ttl=st.one_of(st.none(), st.floats(0.5, 500)),
)
def test_no_label_row_sees_a_feature_time_or_write_after_its_own(
    events: list[tuple[int, float, float]],
    labels: list[tuple[int, float]],
    ttl: float | None,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pq.write_table(
            pa.table(
                {
                    "card_id": pa.array([k for k, _, _ in events], pa.int64()),
                    "ts": pa.array([t for _, t, _ in events], pa.float64()),
                    "created": pa.array([t + lag for _, t, lag in events], pa.float64()),
                    "seen": pa.array([t for _, t, _ in events], pa.float64()),
                    "written": pa.array([t + lag for _, t, lag in events], pa.float64()),
                }
            ),
            folder / "events.parquet",
        )
        view = FeatureView(
            "tx",
            CARD,
            FileSource(str(folder / "events.parquet"), "ts", "created"),
            features=[Feature("seen", "float64"), Feature("written", "float64")],
            ttl=ttl,
        )
        frame = pa.table(
            {
                "card_id": pa.array([k for k, _ in labels], pa.int64()),
                "event_timestamp": pa.array([t for _, t in labels], pa.float64()),
            }
        )
        out = get_training_set(
            frame, ["tx:seen", "tx:written"], [view], options=OfflineOptions(temp_dir=folder)
        )
    for (key, t), seen, written in zip(
        labels, out.column("seen").to_pylist(), out.column("written").to_pylist(), strict=True
    ):
        if seen is None:
            usable = [
                e
                for e in events
                if e[0] == key
                and e[1] <= t
                and e[1] + e[2] <= t
                and (ttl is None or e[1] > t - ttl)
            ]
            assert not usable
            continue
        assert seen <= t
        assert written <= t
        assert ttl is None or seen > t - ttl
        assert not math.isnan(seen)
