"""Training sets: frames in and out, time types, sources of every kind, and bad input as
clear errors naming what was wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelyard.config import load_settings
from modelyard.errors import FeatureViewNotFoundError, ValidationError
from modelyard.features import (
    Aggregation,
    Entity,
    Feature,
    FeatureView,
    FileSource,
    StreamSource,
)
from modelyard.features.offline import OfflineOptions, get_training_set

CARD = Entity("card", "card_id", "int64")
USER = Entity("user", "user_id", "string")
T0 = datetime(2024, 3, 1, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def options(tmp_path: Path) -> OfflineOptions:
    return OfflineOptions(temp_dir=tmp_path / "spill", offline_dir=tmp_path / "offline")


@pytest.fixture
def transactions(tmp_path: Path) -> FeatureView:
    """Card 1: amounts 10 (t=0), 20 (t=10, written at t=12), 30 (t=20); card 2: 5 (t=5)."""
    frame = pd.DataFrame(
        {
            "card_id": [1, 1, 1, 2],
            "ts": [at(0), at(10), at(20), at(5)],
            "written": [at(0), at(12), at(20), at(5)],
            "amount": [10.0, 20.0, 30.0, 5.0],
            "n": [1, 2, 3, 4],
            "merchant": ["a", "b", "b", "c"],
            "flag": [True, False, True, False],
        }
    )
    path = tmp_path / "tx.parquet"
    frame.to_parquet(path)
    return FeatureView(
        "tx",
        CARD,
        FileSource(str(path), "ts", "written"),
        features=[
            Feature("amount", "float64"),
            Feature("n", "int64"),
            Feature("merchant", "string"),
            Feature("flag", "bool"),
        ],
        aggregations=[Aggregation("count", "15m"), Aggregation("sum", "1h", "amount")],
        ttl="1h",
    )


def labels_pandas() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "card_id": [1, 1, 2, 3, 1, 1],
            "event_timestamp": pd.to_datetime(
                [at(11), at(12), at(6), at(6), at(90), at(-1)], utc=True
            ),
            "label": [0, 1, 1, 0, 1, 0],
        },
        index=pd.Index(list("uvwxyz"), name="id"),
    )


def test_pandas_in_pandas_out_with_its_index_columns_and_types(
    transactions: FeatureView, options: OfflineOptions
) -> None:
    frame = labels_pandas()
    out = get_training_set(
        frame,
        ["tx:amount", "tx:n", "tx:merchant", "tx:flag", "tx:count_15m", "tx:amount_sum_1h"],
        [transactions],
        options=options,
    )
    assert isinstance(out, pd.DataFrame)
    assert list(out.index) == list("uvwxyz")
    assert list(out.columns) == [
        "card_id", "event_timestamp", "label",
        "amount", "n", "merchant", "flag", "count_15m", "amount_sum_1h",
    ]  # fmt: skip
    pd.testing.assert_frame_equal(out[frame.columns], frame)
    # at 11 the row of t=10 is not written yet (12): the one of t=0; at 12 it is
    assert out["amount"].tolist()[:2] == [10.0, 20.0]
    assert out["n"].tolist() == [1, 2, 4, pd.NA, pd.NA, pd.NA]
    assert str(out["n"].dtype) == "Int64"
    assert str(out["flag"].dtype) == "boolean"
    assert out["merchant"].tolist()[:3] == ["a", "b", "c"]
    assert out["count_15m"].tolist() == [1, 2, 1, 0, 0, 0]
    assert out["amount_sum_1h"].tolist() == [10.0, 30.0, 5.0, 0.0, 0.0, 0.0]
    assert np.isnan(out["amount"].iloc[3])  # an entity without rows
    assert np.isnan(out["amount"].iloc[4])  # past the TTL
    assert np.isnan(out["amount"].iloc[5])  # before anything happened


def test_polars_and_arrow_come_back_as_they_came(
    transactions: FeatureView, options: OfflineOptions
) -> None:
    frame = labels_pandas().reset_index(drop=True)
    as_polars = pl.from_pandas(frame)
    as_arrow = pa.Table.from_pandas(frame, preserve_index=False)
    out_polars = get_training_set(as_polars, ["tx:amount", "tx:n"], [transactions], options=options)
    out_arrow = get_training_set(as_arrow, ["tx:amount", "tx:n"], [transactions], options=options)
    assert isinstance(out_polars, pl.DataFrame)
    assert isinstance(out_arrow, pa.Table)
    assert out_polars.columns == ["card_id", "event_timestamp", "label", "amount", "n"]
    assert out_polars.schema["n"] == pl.Int64
    assert out_polars["amount"].to_list() == [10.0, 20.0, 5.0, None, None, None]
    assert out_arrow.column("amount").to_pylist() == [10.0, 20.0, 5.0, None, None, None]
    assert (
        out_arrow.schema.field("event_timestamp").type
        == as_arrow.schema.field("event_timestamp").type
    )


def test_naive_datetimes_and_epoch_seconds_are_the_same_times(
    transactions: FeatureView, options: OfflineOptions
) -> None:
    aware = labels_pandas()
    naive = aware.assign(event_timestamp=aware["event_timestamp"].dt.tz_localize(None))
    epoch = pd.Timestamp(0, tz="UTC")
    seconds = aware.assign(event_timestamp=(aware["event_timestamp"] - epoch).dt.total_seconds())
    nanos = aware.assign(
        event_timestamp=aware["event_timestamp"].dt.tz_localize(None).dt.as_unit("ns")
    )
    results = [
        get_training_set(f, ["tx:amount"], [transactions], options=options)["amount"].tolist()
        for f in (aware, naive, seconds, nanos)
    ]
    assert all(np.allclose(r, results[0], equal_nan=True) for r in results)


def test_an_empty_frame_gives_an_empty_training_set(
    transactions: FeatureView, options: OfflineOptions
) -> None:
    out = get_training_set(labels_pandas().iloc[:0], ["tx:amount"], [transactions], options=options)
    assert list(out.columns) == ["card_id", "event_timestamp", "label", "amount"]
    assert len(out) == 0


def test_full_names_and_the_order_asked_for(
    transactions: FeatureView, tmp_path: Path, options: OfflineOptions
) -> None:
    other = FeatureView(
        "tx2", CARD, transactions.source, features=[Feature("amount", "float64")], ttl=None
    )
    frame = labels_pandas()
    with pytest.raises(ValidationError, match=r"\['amount'\] come from more than one view"):
        get_training_set(frame, ["tx:amount", "tx2:amount"], [transactions, other], options=options)
    out = get_training_set(
        frame,
        ["tx2:amount", "tx:n", "tx:amount"],
        {"tx": transactions, "tx2": other},
        options=options,
        full_names=True,
    )
    assert list(out.columns)[3:] == ["tx2__amount", "tx__n", "tx__amount"]
    assert out["tx2__amount"].tolist()[4] == 30.0  # no TTL: still the latest at t=90


def test_csv_sources_and_string_keys(tmp_path: Path, options: OfflineOptions) -> None:
    path = tmp_path / "users.csv"
    path.write_text(
        "user_id,ts,score\n"
        "ann,2024-03-01 00:00:00,1.5\n"
        "bob,2024-03-01 00:05:00,2.5\n"
        "ann,2024-03-01 00:10:00,3.5\n"
        "ann,2024-03-01 00:10:00,4.5\n"  # a tie: the row read last wins
    )
    view = FeatureView(
        "users", USER, FileSource(str(path), "ts"), features=[Feature("score", "float64")]
    )
    frame = pl.DataFrame({"user_id": ["ann", "bob", "ann", "cid"], "event_timestamp": [
        at(9), at(9), at(10), at(10)
    ]})  # fmt: skip
    out = get_training_set(frame, ["users:score"], [view], options=options)
    assert out["score"].to_list() == [1.5, 2.5, 4.5, None]


def test_a_glob_of_parquet_files_is_read_in_file_order(
    tmp_path: Path, options: OfflineOptions
) -> None:
    for name, score in (("b", 2.0), ("a", 1.0), ("c", 3.0)):  # written out of order
        pq.write_table(
            pa.table({"card_id": [1], "ts": [100.0], "score": [score]}),
            tmp_path / f"part-{name}.parquet",
        )
    view = FeatureView(
        "s",
        CARD,
        FileSource(str(tmp_path / "part-*.parquet"), "ts"),
        features=[Feature("score", "float64")],
    )
    frame = pa.table({"card_id": [1], "event_timestamp": [100.0]})
    out = get_training_set(frame, ["s:score"], [view], options=options)
    assert out.column("score").to_pylist() == [3.0]  # part-c is read last


def test_stream_sources_read_the_pushed_events(tmp_path: Path, options: OfflineOptions) -> None:
    stream = StreamSource("payments", fields=(Feature("amount", "float64"),))
    folder = tmp_path / "offline" / "payments"
    folder.mkdir(parents=True)

    def push(
        name: str, ids: list[str], times: list[float], amounts: list[float], now: float
    ) -> None:
        pq.write_table(
            pa.table(
                {
                    "card_id": pa.array([1] * len(ids), pa.int64()),
                    "event_time": pa.array(times, pa.float64()),
                    "amount": pa.array(amounts, pa.float64()),
                    "_created_at": pa.array([now] * len(ids), pa.float64()),
                    "_event_id": pa.array(ids, pa.string()),
                }
            ),
            folder / f"{name}.parquet",
        )

    push("001", ["e1", "e2"], [10.0, 20.0], [1.0, 2.0], now=25.0)
    push("002", ["e2", "e3"], [20.0, 21.0], [2.0, 4.0], now=30.0)  # e2 replayed
    (folder / ".003.parquet.tmp").write_bytes(b"half a file")  # being written: not read
    view = FeatureView(
        "pay",
        CARD,
        stream,
        features=[Feature("amount", "float64")],
        aggregations=[Aggregation("sum", "1h", "amount"), Aggregation("count", "1h")],
    )
    frame = pa.table({"card_id": [1, 1, 1], "event_timestamp": [24.0, 26.0, 31.0]})
    out = get_training_set(
        frame, ["pay:amount", "pay:amount_sum_1h", "pay:count_1h"], [view], options=options
    )
    # before 25 nothing was accepted; at 26 e1, e2 were; at 31 e3 too, e2 counted once
    assert out.column("amount").to_pylist() == [None, 2.0, 4.0]
    assert out.column("amount_sum_1h").to_pylist() == [0.0, 3.0, 7.0]
    assert out.column("count_1h").to_pylist() == [0, 2, 3]


def test_a_stream_nothing_was_pushed_to_gives_nulls(options: OfflineOptions) -> None:
    stream = StreamSource("quiet", fields=(Feature("amount", "float64"),))
    view = FeatureView(
        "q", CARD, stream, features=[Feature("amount", "float64")],
        aggregations=[Aggregation("count", "1h")],
    )  # fmt: skip
    out = get_training_set(
        pa.table({"card_id": [1], "event_timestamp": [1.0]}),
        ["q:amount", "q:count_1h"],
        [view],
        options=options,
    )
    assert out.to_pylist() == [
        {"card_id": 1, "event_timestamp": 1.0, "amount": None, "count_1h": 0}
    ]


def test_options_come_from_the_settings(tmp_path: Path, transactions: FeatureView) -> None:
    settings = load_settings(home=tmp_path / "home", environ={})
    out = get_training_set(labels_pandas(), ["tx:amount"], [transactions], options=settings)
    assert out["amount"].tolist()[:3] == [10.0, 20.0, 5.0]
    spill = settings.resolved_features_dir / "tmp"
    assert spill.is_dir()
    assert not any(spill.iterdir())


# ---- bad input: clear errors naming what was wrong ----------------------------------


def test_an_unknown_view_or_feature_is_not_found(
    transactions: FeatureView, options: OfflineOptions
) -> None:
    frame = labels_pandas()
    with pytest.raises(FeatureViewNotFoundError, match=r"no feature view 'nope' is defined"):
        get_training_set(frame, ["nope:amount"], [transactions], options=options)
    with pytest.raises(FeatureViewNotFoundError, match=r"view 'tx' has no feature 'nope'"):
        get_training_set(frame, ["tx:nope"], [transactions], options=options)


def test_an_empty_or_malformed_feature_list_is_refused(
    transactions: FeatureView, options: OfflineOptions
) -> None:
    with pytest.raises(ValidationError, match=r"at least one feature"):
        get_training_set(labels_pandas(), [], [transactions], options=options)
    with pytest.raises(ValidationError, match=r"'view:feature', got 'amount'"):
        get_training_set(labels_pandas(), ["amount"], [transactions], options=options)


def test_a_frame_without_its_timestamp_or_key_column_is_refused(
    transactions: FeatureView, options: OfflineOptions
) -> None:
    frame = labels_pandas()
    with pytest.raises(ValidationError, match=r"no timestamp column 'when'"):
        get_training_set(frame, ["tx:amount"], [transactions], timestamp="when", options=options)
    with pytest.raises(ValidationError, match=r"no column 'card_id', the key of entity 'card'"):
        get_training_set(
            frame.drop(columns="card_id"), ["tx:amount"], [transactions], options=options
        )


def test_a_feature_named_like_a_frame_column_is_refused(
    transactions: FeatureView, options: OfflineOptions
) -> None:
    frame = labels_pandas().rename(columns={"label": "amount"})
    with pytest.raises(ValidationError, match=r"already has column\(s\) \['amount'\]"):
        get_training_set(frame, ["tx:amount"], [transactions], options=options)


def test_key_and_time_types_that_do_not_compare_are_refused(
    transactions: FeatureView, options: OfflineOptions
) -> None:
    frame = labels_pandas().assign(card_id=["1", "1", "2", "3", "1", "1"])
    with pytest.raises(ValidationError, match=r"column 'card_id' holds VARCHAR but the key"):
        get_training_set(frame, ["tx:amount"], [transactions], options=options)
    frame = labels_pandas().assign(event_timestamp=["yesterday"] * 6)
    with pytest.raises(ValidationError, match=r"timestamp column 'event_timestamp' must hold"):
        get_training_set(frame, ["tx:amount"], [transactions], options=options)


def test_a_type_mismatch_between_definition_and_data_is_refused(
    tmp_path: Path, options: OfflineOptions
) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"card_id": [1], "ts": ["noon"], "amount": ["x"]}), path)
    frame = pa.table({"card_id": [1], "event_timestamp": [1.0]})
    wrong_feature = FeatureView(
        "v", CARD, FileSource(str(path), "created_at"), features=[Feature("amount", "int64")]
    )
    with pytest.raises(ValidationError, match=r"has no column\(s\) \['created_at'\]"):
        get_training_set(frame, ["v:amount"], [wrong_feature], options=options)
    wrong_time = FeatureView(
        "v", CARD, FileSource(str(path), "ts"), features=[Feature("amount", "string")]
    )
    with pytest.raises(ValidationError, match=r"column 'ts' of view 'v' must hold times"):
        get_training_set(frame, ["v:amount"], [wrong_time], options=options)
    pq.write_table(pa.table({"card_id": [1], "ts": [1.0], "amount": ["x"]}), path)
    with pytest.raises(
        ValidationError,
        match=r"'amount' of view 'v' is declared int64 but the source holds VARCHAR",
    ):
        get_training_set(frame, ["v:amount"], [wrong_feature.__class__(
            "v", CARD, FileSource(str(path), "ts"), features=[Feature("amount", "int64")]
        )], options=options)  # fmt: skip
    summed = FeatureView(
        "v", CARD, FileSource(str(path), "ts"), aggregations=[Aggregation("sum", "1h", "amount")]
    )
    with pytest.raises(
        ValidationError, match=r"sum needs numbers, but column 'amount' holds VARCHAR"
    ):
        get_training_set(frame, ["v:amount_sum_1h"], [summed], options=options)


def test_missing_files_and_unknown_frames_are_refused(
    transactions: FeatureView, tmp_path: Path, options: OfflineOptions
) -> None:
    gone = FeatureView(
        "gone",
        CARD,
        FileSource(str(tmp_path / "none-*.parquet"), "ts"),
        features=[Feature("amount", "float64")],
    )
    frame = pa.table({"card_id": [1], "event_timestamp": [1.0]})
    with pytest.raises(ValidationError, match=r"view 'gone': no file matches"):
        get_training_set(frame, ["gone:amount"], [gone], options=options)
    with pytest.raises(ValidationError, match=r"must be a pandas DataFrame.*got builtins.dict"):
        get_training_set({"card_id": [1]}, ["tx:amount"], [transactions], options=options)


def test_a_corrupt_file_is_a_validation_error(tmp_path: Path, options: OfflineOptions) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    view = FeatureView(
        "b", CARD, FileSource(str(path), "ts"), features=[Feature("amount", "float64")]
    )
    with pytest.raises(ValidationError, match=r"could not read the parquet source"):
        get_training_set(
            pa.table({"card_id": [1], "event_timestamp": [1.0]}), ["b:amount"], [view],
            options=options,
        )  # fmt: skip


def test_nan_is_missing_in_aggregates_and_times(tmp_path: Path, options: OfflineOptions) -> None:
    """pyarrow leaves NaN out of Parquet's min/max statistics; DuckDB must not conclude
    from them that a column holds no NaN (duckdb#25521)."""
    nan = float("nan")
    pq.write_table(
        pa.table(
            {
                "card_id": pa.array([1] * 11, pa.int64()),
                "ts": pa.array([nan] + [5.0] * 10, pa.float64()),
                "amount": pa.array([7.0] + [nan] * 9 + [2.0], pa.float64()),
            }
        ),
        tmp_path / "nan.parquet",
    )
    view = FeatureView(
        "v",
        CARD,
        FileSource(str(tmp_path / "nan.parquet"), "ts"),
        aggregations=[Aggregation("sum", "1h", "amount"), Aggregation("count", "1h")],
    )
    out = get_training_set(
        pa.table({"card_id": [1], "event_timestamp": [10.0]}),
        ["v:amount_sum_1h", "v:count_1h"],
        [view],
        options=options,
    )
    assert out.to_pylist()[0] == {
        "card_id": 1, "event_timestamp": 10.0, "amount_sum_1h": 2.0, "count_1h": 10
    }  # fmt: skip
