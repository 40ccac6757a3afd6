"""Request validation against a signature: every rule, and the message naming field and row."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.errors import (
    MalformedRequestError,
    ModelyardError,
    PayloadTooLargeError,
    ValidationError,
)
from modelyard.registry.signature import FieldSpec, Signature
from modelyard.serving.hosting.validation import InputValidator
from modelyard.serving.wire.oip import Tensor


def matrix_tensor(rows: list[list[object]], datatype: str = "FP32") -> Tensor:
    flat = [value for row in rows for value in row]
    return Tensor("input", datatype, (len(rows), len(rows[0]) if rows else 3), flat)


class TestMatrixTensor:
    def test_builds_the_models_matrix(self, matrix_signature: Signature) -> None:
        prepared = InputValidator(matrix_signature, 100).from_tensors(
            [matrix_tensor([[1.5, 30, 0.25], [2, 40.0, 0.5]])]
        )
        assert prepared.rows == 2
        assert isinstance(prepared.model_input, np.ndarray)
        assert prepared.model_input.dtype == np.float32
        np.testing.assert_allclose(prepared.model_input, [[1.5, 30, 0.25], [2, 40, 0.5]])

    def test_wrong_width_names_the_expected_shape(self, matrix_signature: Signature) -> None:
        tensor = Tensor("input", "FP32", (1, 2), [1.0, 2.0])
        with pytest.raises(ValidationError, match=r"shape \[rows, 3\].*got \[1, 2\]"):
            InputValidator(matrix_signature, 100).from_tensors([tensor])

    def test_string_value_names_field_and_row(self, matrix_signature: Signature) -> None:
        tensor = matrix_tensor([[1.0, 30, 0.1], [2.0, "abc", 0.2]])
        with pytest.raises(
            ValidationError, match=r"field 'age' must be a number, got 'abc' \(row 1\)"
        ):
            InputValidator(matrix_signature, 100).from_tensors([tensor])

    def test_boolean_is_not_a_number(self, matrix_signature: Signature) -> None:
        tensor = matrix_tensor([[True, 30, 0.1]])
        with pytest.raises(ValidationError, match=r"field 'amount' must be a number, got true"):
            InputValidator(matrix_signature, 100).from_tensors([tensor])

    def test_null_only_where_nan_is_allowed(self, matrix_signature: Signature) -> None:
        validator = InputValidator(matrix_signature, 100)
        prepared = validator.from_tensors([matrix_tensor([[1.0, 30, None]])])
        assert isinstance(prepared.model_input, np.ndarray)
        assert math.isnan(prepared.model_input[0, 2])
        with pytest.raises(ValidationError, match=r"field 'amount' must not be null/NaN \(row 0\)"):
            validator.from_tensors([matrix_tensor([[None, 30, 0.5]])])

    def test_value_too_large_for_float32(self, matrix_signature: Signature) -> None:
        with pytest.raises(ValidationError, match=r"field 'amount' value 1e\+39 is out of range"):
            InputValidator(matrix_signature, 100).from_tensors([matrix_tensor([[1e39, 1, 1]])])

    def test_declared_bounds_name_field_and_row(self, matrix_signature: Signature) -> None:
        tensor = matrix_tensor([[1.0, 30, 0.1], [1.0, 131, 0.1]])
        with pytest.raises(
            ValidationError, match=r"field 'age' must be within \[0, 130\], got 131.0 \(row 1\)"
        ):
            InputValidator(matrix_signature, 100).from_tensors([tensor])

    def test_text_datatype_is_refused_for_numbers(self, matrix_signature: Signature) -> None:
        with pytest.raises(ValidationError, match="got datatype BYTES"):
            InputValidator(matrix_signature, 100).from_tensors(
                [matrix_tensor([[1, 2, 3]], "BYTES")]
            )

    def test_other_numeric_datatypes_are_converted(self, matrix_signature: Signature) -> None:
        prepared = InputValidator(matrix_signature, 100).from_tensors(
            [matrix_tensor([[1, 2, 3]], "INT64")]
        )
        assert isinstance(prepared.model_input, np.ndarray)
        assert prepared.model_input.dtype == np.float32

    def test_too_many_rows_is_413(self, matrix_signature: Signature) -> None:
        tensor = matrix_tensor([[1.0, 2.0, 3.0]] * 3)
        with pytest.raises(PayloadTooLargeError, match="3 rows; this server takes at most 2"):
            InputValidator(matrix_signature, 2).from_tensors([tensor])

    def test_no_rows(self, matrix_signature: Signature) -> None:
        with pytest.raises(ValidationError, match="no rows"):
            InputValidator(matrix_signature, 2).from_tensors([Tensor("input", "FP32", (0, 3), [])])


class TestFieldTensors:
    def test_one_tensor_per_field(self, matrix_signature: Signature) -> None:
        tensors = [
            Tensor("score", "FP32", (2,), [0.1, 0.2]),
            Tensor("amount", "FP64", (2, 1), [1.0, 2.0]),
            Tensor("age", "INT32", (2,), [20, 30]),
        ]
        prepared = InputValidator(matrix_signature, 100).from_tensors(tensors)
        np.testing.assert_allclose(prepared.model_input, [[1, 20, 0.1], [2, 30, 0.2]], rtol=1e-6)

    def test_missing_field(self, matrix_signature: Signature) -> None:
        tensors = [Tensor("amount", "FP32", (1,), [1.0]), Tensor("age", "FP32", (1,), [1.0])]
        with pytest.raises(ValidationError, match=r"missing input field\(s\) 'score'"):
            InputValidator(matrix_signature, 100).from_tensors(tensors)

    def test_extra_field(self, matrix_signature: Signature) -> None:
        tensors = [
            Tensor(name, "FP32", (1,), [1.0]) for name in ("amount", "age", "score", "colour")
        ]
        with pytest.raises(ValidationError, match=r"unexpected input field\(s\) 'colour'"):
            InputValidator(matrix_signature, 100).from_tensors(tensors)

    def test_duplicate_field(self, matrix_signature: Signature) -> None:
        tensors = [Tensor("amount", "FP32", (1,), [1.0])] * 2
        with pytest.raises(ValidationError, match="'amount' is given more than once"):
            InputValidator(matrix_signature, 100).from_tensors(tensors)

    def test_row_counts_must_agree(self, matrix_signature: Signature) -> None:
        tensors = [
            Tensor("amount", "FP32", (2,), [1.0, 2.0]),
            Tensor("age", "FP32", (1,), [1.0]),
            Tensor("score", "FP32", (2,), [1.0, 2.0]),
        ]
        with pytest.raises(ValidationError, match="different row counts"):
            InputValidator(matrix_signature, 100).from_tensors(tensors)

    def test_field_tensor_must_be_a_column(self, matrix_signature: Signature) -> None:
        tensors = [Tensor(n, "FP32", (1, 2), [1.0, 2.0]) for n in ("amount", "age", "score")]
        with pytest.raises(ValidationError, match=r"'amount' must have shape \[rows\]"):
            InputValidator(matrix_signature, 100).from_tensors(tensors)

    def test_mixed_types(self, columns_signature: Signature) -> None:
        tensors = [
            Tensor("amount", "FP64", (2,), [1.5, None]),
            Tensor("count", "INT64", (2,), [3, 4.0]),
            Tensor("member", "BOOL", (2,), [True, False]),
            Tensor("country", "BYTES", (2,), ["DE", "NL"]),
        ]
        prepared = InputValidator(columns_signature, 100).from_tensors(tensors)
        assert isinstance(prepared.model_input, dict)
        assert prepared.model_input["count"].dtype == np.int64
        assert prepared.model_input["count"].tolist() == [3, 4]
        assert math.isnan(prepared.model_input["amount"][1])
        assert prepared.model_input["country"].tolist() == ["DE", "NL"]

    def test_unknown_category(self, columns_signature: Signature) -> None:
        tensors = [
            Tensor("amount", "FP64", (1,), [1.5]),
            Tensor("count", "INT64", (1,), [3]),
            Tensor("member", "BOOL", (1,), [True]),
            Tensor("country", "BYTES", (1,), ["XX"]),
        ]
        with pytest.raises(
            ValidationError, match=r"'country' must be one of .* got 'XX' \(row 0\)"
        ):
            InputValidator(columns_signature, 100).from_tensors(tensors)

    def test_an_image_file_in_a_text_field_is_refused_naming_it(
        self, columns_signature: Signature
    ) -> None:
        """The binary parsers keep a PNG or JPEG file as bytes (for image models); a model
        whose field takes text refuses it like any other value of the wrong kind."""
        tensors = [
            Tensor("amount", "FP64", (1,), [1.5]),
            Tensor("count", "INT64", (1,), [3]),
            Tensor("member", "BOOL", (1,), [True]),
            Tensor("country", "BYTES", (1,), [b"\x89PNG\r\n\x1a\n" + bytes(8)]),
        ]
        with pytest.raises(ValidationError, match=r"'country' .*row 0"):
            InputValidator(columns_signature, 100).from_tensors(tensors)

    def test_fractional_integer(self, columns_signature: Signature) -> None:
        tensors = [
            Tensor("amount", "FP64", (1,), [1.5]),
            Tensor("count", "INT64", (1,), [3.5]),
            Tensor("member", "BOOL", (1,), [True]),
            Tensor("country", "BYTES", (1,), ["DE"]),
        ]
        with pytest.raises(ValidationError, match=r"'count' must be an integer, got 3.5 \(row 0\)"):
            InputValidator(columns_signature, 100).from_tensors(tensors)

    def test_integer_overflow(self, columns_signature: Signature) -> None:
        tensors = [
            Tensor("amount", "FP64", (1,), [1.5]),
            Tensor("count", "INT64", (1,), [2**63]),
            Tensor("member", "BOOL", (1,), [True]),
            Tensor("country", "BYTES", (1,), ["DE"]),
        ]
        with pytest.raises(ValidationError, match=r"'count' value .* is out of range"):
            InputValidator(columns_signature, 100).from_tensors(tensors)


class TestRecords:
    def test_objects(self, matrix_signature: Signature) -> None:
        prepared = InputValidator(matrix_signature, 100).from_records(
            [{"amount": 1, "age": 2, "score": 3}, {"score": 6, "age": 5, "amount": 4}]
        )
        np.testing.assert_allclose(prepared.model_input, [[1, 2, 3], [4, 5, 6]])

    def test_lists_in_field_order(self, matrix_signature: Signature) -> None:
        prepared = InputValidator(matrix_signature, 100).from_records([[1, 2, 3]])
        np.testing.assert_allclose(prepared.model_input, [[1, 2, 3]])

    def test_missing_field_names_row(self, matrix_signature: Signature) -> None:
        records = [{"amount": 1, "age": 2, "score": 3}, {"amount": 1, "score": 3}]
        with pytest.raises(ValidationError, match=r"missing field\(s\) 'age' \(row 1\)"):
            InputValidator(matrix_signature, 100).from_records(records)

    def test_extra_field_names_row(self, matrix_signature: Signature) -> None:
        records = [{"amount": 1, "age": 2, "score": 3, "colour": "red"}]
        with pytest.raises(ValidationError, match=r"unexpected field\(s\) 'colour' \(row 0\)"):
            InputValidator(matrix_signature, 100).from_records(records)

    def test_wrong_type_names_field_and_row(self, matrix_signature: Signature) -> None:
        records = [{"amount": 1, "age": 2, "score": 3}, {"amount": "12,5", "age": 2, "score": 3}]
        with pytest.raises(
            ValidationError, match=r"'amount' must be a number, got '12,5' \(row 1\)"
        ):
            InputValidator(matrix_signature, 100).from_records(records)

    def test_list_of_wrong_length(self, matrix_signature: Signature) -> None:
        with pytest.raises(ValidationError, match="record 0 must be a list of 3 values"):
            InputValidator(matrix_signature, 100).from_records([[1, 2]])

    def test_not_a_list(self, matrix_signature: Signature) -> None:
        with pytest.raises(MalformedRequestError, match="'instances' must be a non-empty list"):
            InputValidator(matrix_signature, 100).from_records({"amount": 1})

    def test_scalar_records(self, matrix_signature: Signature) -> None:
        with pytest.raises(ValidationError, match="each record must be an object"):
            InputValidator(matrix_signature, 100).from_records([1, 2])

    def test_columns_layout(self, columns_signature: Signature) -> None:
        prepared = InputValidator(columns_signature, 100).from_records(
            [{"amount": None, "count": 1, "member": False, "country": "FR"}]
        )
        assert isinstance(prepared.model_input, dict)
        assert prepared.model_input["member"].dtype == np.bool_

    def test_too_many_records(self, matrix_signature: Signature) -> None:
        with pytest.raises(PayloadTooLargeError):
            InputValidator(matrix_signature, 1).from_records([[1, 2, 3], [1, 2, 3]])


def test_per_row_shapes_are_refused() -> None:
    signature = Signature(inputs=(FieldSpec("embedding", "float32", (8,)),))
    with pytest.raises(ModelyardError, match="scalar fields only"):
        InputValidator(signature, 10)


finite = st.floats(allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(finite, st.floats(0, 130, width=32), finite), min_size=1, max_size=20))
def test_valid_rows_round_trip(rows: list[tuple[float, float, float]]) -> None:
    signature = Signature(
        inputs=(
            FieldSpec("amount", "float32"),
            FieldSpec("age", "float32", minimum=0, maximum=130),
            FieldSpec("score", "float32", allow_nan=True),
        )
    )
    validator = InputValidator(signature, 100)
    expected = np.array(rows, dtype=np.float32)
    from_tensor = validator.from_tensors([matrix_tensor([list(r) for r in rows])])
    from_records = validator.from_records([{"amount": a, "age": b, "score": c} for a, b, c in rows])
    np.testing.assert_array_equal(from_tensor.model_input, expected)
    np.testing.assert_array_equal(from_records.model_input, expected)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(json_values, min_size=0, max_size=4))
def test_junk_records_raise_only_our_errors(instances: list[object]) -> None:
    signature = Signature(
        inputs=(FieldSpec("a", "float32"), FieldSpec("b", "float32")), layout="matrix"
    )
    with contextlib.suppress(ModelyardError):
        InputValidator(signature, 3).from_records(instances)


@settings(max_examples=150, deadline=None)
@given(json_values, st.sampled_from(["FP32", "INT64", "BOOL", "BYTES"]))
def test_junk_tensor_data_raises_only_our_errors(data: object, datatype: str) -> None:
    signature = Signature(
        inputs=(FieldSpec("n", "float32"), FieldSpec("c", "object")), layout="columns"
    )
    values = data if isinstance(data, list) else [data]
    tensors = [
        Tensor("n", datatype, (len(values),), values),
        Tensor("c", "BYTES", (len(values),), values),
    ]
    with contextlib.suppress(ModelyardError):
        InputValidator(signature, 10).from_tensors(tensors)


def array_tensor(rows: list[list[float]], dtype: str = "<f4", datatype: str = "FP32") -> Tensor:
    """A matrix tensor as binary tensor data decodes it: a flat numpy array."""
    values = np.array(rows, dtype=dtype)
    return Tensor("input", datatype, values.shape, values.ravel())


class TestBinaryMatrixTensor:
    """Binary tensor data skips the Python list but passes the same checks."""

    def test_builds_the_same_matrix_as_json(self, matrix_signature: Signature) -> None:
        validator = InputValidator(matrix_signature, 100)
        rows = [[1.5, 30.0, 0.25], [2.0, 40.0, np.nan]]
        prepared = validator.from_tensors([array_tensor(rows)])
        assert isinstance(prepared.model_input, np.ndarray)
        assert prepared.model_input.dtype == np.float32
        assert prepared.model_input.flags.writeable
        expected = validator.from_tensors([matrix_tensor([[1.5, 30, 0.25], [2.0, 40, None]])])
        np.testing.assert_array_equal(prepared.model_input, expected.model_input)

    def test_nan_only_where_allowed(self, matrix_signature: Signature) -> None:
        with pytest.raises(ValidationError, match=r"field 'amount' must not be null/NaN \(row 1\)"):
            InputValidator(matrix_signature, 100).from_tensors(
                [array_tensor([[1.0, 30.0, 0.5], [np.nan, 30.0, 0.5]])]
            )

    def test_value_too_large_for_float32(self, matrix_signature: Signature) -> None:
        with pytest.raises(ValidationError, match=r"field 'amount' value 1e\+39 is out of range"):
            InputValidator(matrix_signature, 100).from_tensors(
                [array_tensor([[1e39, 1.0, 1.0]], "<f8", "FP64")]
            )

    def test_infinity_is_out_of_range(self, matrix_signature: Signature) -> None:
        with pytest.raises(ValidationError, match=r"field 'score' value inf is out of range"):
            InputValidator(matrix_signature, 100).from_tensors([array_tensor([[1.0, 1.0, np.inf]])])

    def test_declared_bounds_name_field_and_row(self, matrix_signature: Signature) -> None:
        with pytest.raises(
            ValidationError, match=r"field 'age' must be within \[0, 130\], got 131.0 \(row 1\)"
        ):
            InputValidator(matrix_signature, 100).from_tensors(
                [array_tensor([[1.0, 30.0, 0.1], [1.0, 131.0, 0.1]])]
            )

    def test_per_field_arrays(self, columns_signature: Signature) -> None:
        tensors = [
            Tensor("amount", "FP64", (2,), np.array([1.5, np.nan])),
            Tensor("count", "INT64", (2,), np.array([3, 4], dtype="<i8")),
            Tensor("member", "BOOL", (2,), np.array([True, False])),
            Tensor("country", "BYTES", (2,), ["DE", "NL"]),
        ]
        prepared = InputValidator(columns_signature, 100).from_tensors(tensors)
        assert isinstance(prepared.model_input, dict)
        assert prepared.model_input["count"].tolist() == [3, 4]
        assert math.isnan(prepared.model_input["amount"][1])
