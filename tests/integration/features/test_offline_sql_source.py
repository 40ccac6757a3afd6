"""SQL sources on the real SQLite file and PostgreSQL: read through SQLAlchemy in chunks,
joined point-in-time like a Parquet file of the same rows, materialized alike."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy

from modelyard.config import Settings
from modelyard.errors import ValidationError
from modelyard.features import Aggregation, Entity, Feature, FeatureView, FileSource, SqlSource
from modelyard.features.materialize import materialize_incremental
from modelyard.features.offline import OfflineOptions, get_training_set, sources
from modelyard.features.online.memory import InMemoryOnlineStore
from modelyard.store.database import Database

CARD = Entity("card", "card_id", "int64")
T0 = datetime(2024, 3, 1)
FEATURES = (Feature("amount", "float64"), Feature("merchant", "string"))
AGGREGATIONS = (Aggregation("count", "1h"), Aggregation("sum", "1h", "amount"))


def rows(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    ts = [T0 + timedelta(seconds=int(s)) for s in rng.integers(0, 86400, n)]
    return pd.DataFrame(
        {
            "card_id": rng.integers(1, 20, n),
            "ts": ts,
            "written": [
                t + timedelta(seconds=int(lag))
                for t, lag in zip(ts, rng.integers(0, 90, n), strict=True)
            ],
            "amount": rng.normal(50, 20, n).round(2),
            "merchant": rng.choice(["a", "b", "c"], n),
        }
    )


@pytest.fixture
def table(settings: Settings) -> Iterator[pd.DataFrame]:
    """A table ``card_tx`` of 300 rows in the metadata database."""
    data = rows(300)
    database = Database(settings.resolved_database_url)  # the metadata database, migrated
    data.to_sql("card_tx", database.engine, index=False)
    yield data
    with database.engine.begin() as conn:
        conn.execute(sqlalchemy.text("DROP TABLE card_tx"))
    database.dispose()


def labels() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "card_id": rng.integers(1, 22, 200),
            "event_timestamp": [
                T0 + timedelta(seconds=int(s)) for s in rng.integers(0, 90000, 200)
            ],
        }
    )


@pytest.mark.parametrize("query", ["card_tx", "SELECT * FROM card_tx WHERE amount IS NOT NULL"])
def test_a_sql_source_joins_like_the_same_rows_in_parquet(
    settings: Settings,
    table: pd.DataFrame,
    tmp_path: Path,
    query: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sources, "_SQL_CHUNK_ROWS", 64)  # several chunks
    table.to_parquet(tmp_path / "card_tx.parquet")
    kwargs = {"entity": CARD, "features": FEATURES, "aggregations": AGGREGATIONS, "ttl": "2h"}
    in_sql = FeatureView("tx", source=SqlSource(query, "ts", "written"), **kwargs)  # type: ignore[arg-type]
    in_file = FeatureView(
        "tx",
        source=FileSource(str(tmp_path / "card_tx.parquet"), "ts", "written"),
        **kwargs,  # type: ignore[arg-type]
    )
    refs = ["tx:amount", "tx:merchant", "tx:count_1h", "tx:amount_sum_1h"]
    options = OfflineOptions.from_settings(settings)
    from_sql = get_training_set(labels(), refs, [in_sql], options=options)
    from_file = get_training_set(labels(), refs, [in_file], options=options)
    pd.testing.assert_frame_equal(from_sql, from_file)
    assert from_sql["amount"].notna().sum() > 50


def test_materializing_a_sql_source(settings: Settings, table: pd.DataFrame) -> None:
    view = FeatureView(
        "tx",
        CARD,
        SqlSource("card_tx", "ts", "written"),
        features=FEATURES,
        aggregations=AGGREGATIONS,
    )
    store = InMemoryOnlineStore()
    end = (T0 + timedelta(days=2)).replace(tzinfo=UTC).timestamp()
    done = materialize_incremental([view], store, end, options=settings)
    assert done[0].latest_rows == table["card_id"].nunique()
    newest = table.sort_values(["ts", "written"]).groupby("card_id").last()
    row = store.get_latest("tx", ["3"])[0]
    assert row is not None
    assert row.values["amount"] == newest.loc[3, "amount"]
    assert done[0].watermark == max(t.replace(tzinfo=UTC).timestamp() for t in table["written"])


def test_a_missing_table_names_the_source(settings: Settings) -> None:
    view = FeatureView("tx", CARD, SqlSource("no_such_table", "ts"), features=FEATURES)
    with pytest.raises(
        ValidationError, match=r"could not read the SQL source 'no_such_table' of view 'tx'"
    ):
        get_training_set(labels(), ["tx:amount"], [view], options=settings)
