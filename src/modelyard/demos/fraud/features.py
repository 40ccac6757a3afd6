"""The fraud demo's features: per-card aggregates of the transaction stream.

Each transaction is pushed to the ``transactions`` stream once it has been scored; the
``card_activity`` view summarises a card's earlier transactions as of any moment, the
same way offline (a training set) and online (a request). The model reads
``MODEL_REFS`` from the store and the request's own fields (``REQUEST_INPUTS``), so a
request carries the card id and the transaction, never a precomputed feature.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelyard.demos.fraud.world import CATEGORIES, COUNTRIES
from modelyard.features import Aggregation, Entity, Feature, FeatureView, StreamSource

__all__ = [
    "CARD",
    "CARD_ACTIVITY",
    "MODEL_INPUTS",
    "MODEL_REFS",
    "OTHER",
    "REQUEST_INPUTS",
    "TRANSACTIONS",
    "category_code",
    "country_code",
    "definitions",
    "model_refs",
    "request_columns",
    "stream_events",
]

CARD = Entity("card", key="card_id")
TRANSACTIONS = StreamSource(
    "transactions",
    fields=(
        Feature("amount", "float64"),
        Feature("merchant_id", "string"),
        Feature("merchant_category", "string"),
        Feature("country", "string"),
    ),
)
CARD_ACTIVITY = FeatureView(
    "card_activity",
    CARD,
    TRANSACTIONS,
    aggregations=(
        Aggregation("count", "10m", name="count_10m"),
        Aggregation("count", "1h", name="count_1h"),
        Aggregation("count", "24h", name="count_24h"),
        Aggregation("sum", "10m", "amount", name="amount_sum_10m"),
        Aggregation("sum", "1h", "amount", name="amount_sum_1h"),
        Aggregation("sum", "24h", "amount", name="amount_sum_24h"),
        Aggregation("time_since_last", "7d", name="time_since_last_7d"),
        Aggregation("mean", "7d", "amount", name="amount_mean_7d"),
        Aggregation("distinct", "24h", "merchant_id", name="merchants_24h"),
    ),
    description="A card's recent transactions: velocity, spend, habit and merchants.",
)
MODEL_REFS: tuple[str, ...] = tuple(
    f"card_activity:{a.feature_name}" for a in CARD_ACTIVITY.aggregations
)
# The request's own inputs, besides the card id: the transaction as the model reads it.
REQUEST_INPUTS: tuple[str, ...] = ("amount", "hour", "category_code", "country_code")
# Every model input, in the order the model reads them.
MODEL_INPUTS: tuple[str, ...] = (*(ref.split(":")[1] for ref in MODEL_REFS), *REQUEST_INPUTS)
# The code of a category or country outside the fixed vocabularies.
OTHER = -1.0


def definitions() -> list[object]:
    """What ``yard.features.apply`` stores for the demo."""
    return [CARD, CARD_ACTIVITY]


def model_refs() -> list[str]:
    """The ``view:feature`` references the model reads from the store."""
    return list(MODEL_REFS)


def _codes(values: Any, vocabulary: tuple[str, ...]) -> np.ndarray:
    index = {name: float(i) for i, name in enumerate(vocabulary)}
    return np.array([index.get(str(value), OTHER) for value in values], dtype=np.float64)


def category_code(values: Any) -> np.ndarray:
    """Each merchant category's place in ``CATEGORIES`` (``OTHER`` when unknown)."""
    return _codes(values, CATEGORIES)


def country_code(values: Any) -> np.ndarray:
    """Each country's place in ``COUNTRIES`` (``OTHER`` when unknown)."""
    return _codes(values, COUNTRIES)


def request_columns(transactions: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The request-side model inputs (``REQUEST_INPUTS``) of simulated transactions."""
    return {
        "amount": np.asarray(transactions["amount"], dtype=np.float64),
        "hour": np.asarray(transactions["hour"], dtype=np.float64),
        "category_code": category_code(transactions["merchant_category"]),
        "country_code": country_code(transactions["country"]),
    }


def stream_events(transactions: dict[str, np.ndarray]) -> dict[str, list[Any]]:
    """Simulated transactions as events of ``TRANSACTIONS``, each with its transaction id as
    its event id (a replay is recognised)."""
    return {
        "event_id": [str(v) for v in transactions["transaction_id"]],
        "card_id": [str(v) for v in transactions["card_id"]],
        "event_time": [float(v) for v in transactions["event_time"]],
        "amount": [float(v) for v in transactions["amount"]],
        "merchant_id": [str(v) for v in transactions["merchant_id"]],
        "merchant_category": [str(v) for v in transactions["merchant_category"]],
        "country": [str(v) for v in transactions["country"]],
    }
