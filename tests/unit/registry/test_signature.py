import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from modelyard.errors import ValidationError
from modelyard.registry.signature import Signature, infer_signature, to_model_input


def test_numeric_example_gives_a_matrix_signature() -> None:
    example = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    signature = infer_signature(example, feature_names=["amount", "hour", "risk"])
    assert signature.layout == "matrix"
    assert signature.input_names == ["amount", "hour", "risk"]
    assert {s.dtype for s in signature.inputs} == {"float32"}
    assert signature.inputs[0].kind == "number"


def test_mixed_columns_give_a_columns_signature() -> None:
    example = {"amount": np.array([1.5, 2.0]), "country": np.array(["fr", "de"], dtype=object)}
    signature = infer_signature(example)
    assert signature.layout == "columns"
    assert [s.kind for s in signature.inputs] == ["number", "string"]


def test_outputs_are_recorded_with_their_shapes() -> None:
    outputs = {"label": np.array([0, 1]), "probabilities": np.zeros((2, 2), np.float32)}
    signature = infer_signature(np.zeros((2, 2)), outputs=outputs)
    assert [(o.name, o.shape) for o in signature.outputs] == [
        ("label", ()),
        ("probabilities", (2,)),
    ]


def test_round_trip_through_a_dict() -> None:
    signature = infer_signature(
        {"a": np.array([1.0, np.nan]), "b": np.array(["x", "y"], dtype=object)}
    )
    assert Signature.from_dict(signature.to_dict()) == signature
    assert signature.inputs[0].allow_nan


def test_a_dict_batch_becomes_the_model_matrix_in_signature_order() -> None:
    signature = infer_signature(np.zeros((1, 2), np.float32), feature_names=["a", "b"])
    matrix = to_model_input(signature, {"b": [3.0, 4.0], "a": [1.0, 2.0]})
    assert isinstance(matrix, np.ndarray)
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix, [[1.0, 3.0], [2.0, 4.0]])


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ({"a": [1.0]}, r"missing input field\(s\): 'b'"),
        ({"a": [1.0], "b": [1.0], "c": [1.0]}, r"unexpected input field\(s\): 'c'"),
        ({"a": ["x"], "b": [1.0]}, r"field 'a' must be number, got strings"),
        ({"a": [1.0, np.nan], "b": [1.0, 2.0]}, r"field 'a' must not be NaN \(row 1\)"),
        ({"a": [1.0, 2.0], "b": [1.0]}, "different lengths"),
        ({"a": [[1.0]], "b": [[1.0]]}, "must be 1-D"),
    ],
)
def test_bad_batches_name_the_field(batch: dict[str, object], message: str) -> None:
    signature = infer_signature(np.zeros((1, 2), np.float32), feature_names=["a", "b"])
    with pytest.raises(ValidationError, match=message):
        to_model_input(signature, batch)  # type: ignore[arg-type]


def test_a_matrix_with_the_wrong_width_is_refused() -> None:
    signature = infer_signature(np.zeros((1, 2), np.float32), feature_names=["a", "b"])
    with pytest.raises(ValidationError, match=r"2 columns \(a, b\), got shape \(1, 3\)"):
        to_model_input(signature, np.zeros((1, 3)))


@given(
    arrays(
        np.float64, st.tuples(st.integers(1, 20), st.integers(1, 5)), elements=st.floats(-1e6, 1e6)
    )
)
def test_any_finite_matrix_of_the_right_width_is_accepted_unchanged(values: np.ndarray) -> None:
    signature = infer_signature(values)
    result = to_model_input(signature, values)
    np.testing.assert_array_equal(result, values)
    by_name = to_model_input(
        signature, {s.name: values[:, i] for i, s in enumerate(signature.inputs)}
    )
    np.testing.assert_array_equal(by_name, values)
