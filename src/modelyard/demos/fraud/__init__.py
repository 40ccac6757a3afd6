"""The fraud demo: simulated card transactions with switchable drift."""

from modelyard.demos.fraud.simulator import (
    CATEGORIES,
    COLUMNS,
    COUNTRIES,
    FRAUD_LABEL_DELAY_S,
    FRAUD_MIX_AFTER,
    FRAUD_MIX_BEFORE,
    LEGIT_LABEL_DELAY_S,
    PATTERNS,
    Card,
    Merchant,
    SimulatorConfig,
    TransactionSimulator,
)

__all__ = [
    "CATEGORIES",
    "COLUMNS",
    "COUNTRIES",
    "FRAUD_LABEL_DELAY_S",
    "FRAUD_MIX_AFTER",
    "FRAUD_MIX_BEFORE",
    "LEGIT_LABEL_DELAY_S",
    "PATTERNS",
    "Card",
    "Merchant",
    "SimulatorConfig",
    "TransactionSimulator",
]
