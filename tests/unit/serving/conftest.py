"""Signatures written by hand, so the validators are tested without a registry."""

from __future__ import annotations

import pytest

from modelyard.registry.signature import FieldSpec, Signature


@pytest.fixture
def matrix_signature() -> Signature:
    """Three float32 features, the layout most tabular models have."""
    return Signature(
        inputs=(
            FieldSpec("amount", "float32"),
            FieldSpec("age", "float32", minimum=0, maximum=130),
            FieldSpec("score", "float32", allow_nan=True),
        ),
        outputs=(FieldSpec("label", "int64"), FieldSpec("probabilities", "float32", (2,))),
        layout="matrix",
    )


@pytest.fixture
def columns_signature() -> Signature:
    """Mixed types: one column each, as a DataFrame-trained model takes them."""
    return Signature(
        inputs=(
            FieldSpec("amount", "float64", allow_nan=True),
            FieldSpec("count", "int64"),
            FieldSpec("member", "bool"),
            FieldSpec("country", "object", categories=("DE", "FR", "NL")),
        ),
        outputs=(FieldSpec("prediction", "float64"),),
        layout="columns",
    )
