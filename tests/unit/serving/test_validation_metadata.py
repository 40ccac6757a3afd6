"""Requests built from a model's own metadata validate; each way of departing from it is
refused naming the input. Plus the holes this closed: values an integer datatype cannot
hold, unknown tensor names, float64 signatures served as the float32 the model takes."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.errors import MalformedRequestError, ValidationError
from modelyard.registry.signature import FieldSpec, Signature
from modelyard.serving.hosting.validation import InputValidator, served_signature
from modelyard.serving.wire.json_body import decode_json
from modelyard.serving.wire.oip import Tensor, parse_infer_request, tensor_metadata

MAX_ROWS = 8
NUMERIC = ["float32", "float64", "int64", "int32", "uint8"]
RANGES = {dtype: (int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)) for dtype in NUMERIC[2:]}


@st.composite
def signatures(draw: st.DrawFn) -> Signature:
    names = draw(
        st.lists(st.sampled_from(["amount", "age", "count", "flag", "score"]), min_size=1,
                 max_size=4, unique=True)
    )  # fmt: skip
    if draw(st.booleans()):
        dtype = draw(st.sampled_from(NUMERIC))
        return Signature(inputs=tuple(FieldSpec(n, dtype) for n in names), layout="matrix")
    dtypes = [draw(st.sampled_from([*NUMERIC, "bool"])) for _ in names]
    return Signature(
        inputs=tuple(FieldSpec(n, d) for n, d in zip(names, dtypes, strict=True)),
        layout="columns",
    )


def values_for(datatype: str) -> st.SearchStrategy[Any]:
    if datatype == "BOOL":
        return st.booleans()
    if datatype == "FP32":
        return st.floats(allow_nan=False, allow_infinity=False, width=32)
    if datatype == "FP64":
        return st.floats(allow_nan=False, allow_infinity=False)
    low, high = RANGES[datatype.lower()]
    return st.integers(low, high)


@st.composite
def valid_requests(draw: st.DrawFn) -> tuple[InputValidator, dict[str, Any]]:
    """A signature, and a request built only from its metadata (names, datatypes, shapes)."""
    validator = InputValidator(draw(signatures()), MAX_ROWS)
    metadata = tensor_metadata(validator.signature, validator.matrix_datatype)
    rows = draw(st.integers(1, MAX_ROWS))
    inputs = []
    for meta in metadata["inputs"]:
        shape = [rows if d == -1 else d for d in meta["shape"]]
        size = int(np.prod(shape))
        data = draw(st.lists(values_for(meta["datatype"]), min_size=size, max_size=size))
        inputs.append({"name": meta["name"], "datatype": meta["datatype"], "shape": shape,
                       "data": data})  # fmt: skip
    return validator, {"inputs": inputs}


def validate(validator: InputValidator, doc: dict[str, Any]) -> None:
    """What the server does with a decoded body: parse the envelope, then validate."""
    request = parse_infer_request(doc, MAX_ROWS * validator.width)
    validator.from_oip(request)


@settings(max_examples=200, deadline=None)
@given(valid_requests())
def test_requests_built_from_the_metadata_are_accepted(
    case: tuple[InputValidator, dict[str, Any]],
) -> None:
    validator, doc = case
    validate(validator, orjson.loads(orjson.dumps(doc)))


MUTATIONS = ["name", "datatype", "shape", "type", "integrality", "range"]


@settings(max_examples=300, deadline=None)
@given(valid_requests(), st.sampled_from(MUTATIONS), st.data())
def test_each_departure_from_the_metadata_is_refused_naming_the_input(
    case: tuple[InputValidator, dict[str, Any]], mutation: str, data: st.DataObject
) -> None:
    validator, doc = case
    tensor = data.draw(st.sampled_from(doc["inputs"]))
    index = data.draw(st.integers(0, len(tensor["data"]) - 1))
    datatype = tensor["datatype"]
    integer = datatype not in ("FP32", "FP64", "BOOL")
    if mutation == "name":
        tensor["name"] = "nope"
    elif mutation == "datatype":
        tensor["datatype"] = "BYTES" if datatype != "BYTES" else "FP32"
    elif mutation == "shape":
        tensor["shape"] = [*tensor["shape"], 2]
    elif mutation == "type":
        tensor["data"][index] = "abc" if datatype != "BOOL" else 1
    elif mutation == "integrality" and integer:
        tensor["data"][index] = 17.99
    elif mutation == "range" and (integer or datatype == "FP32"):
        tensor["data"][index] = RANGES[datatype.lower()][1] + 1 if integer else 1e39
    else:
        return  # the mutation does not apply to this datatype
    named = {tensor["name"]}
    if tensor["name"] == "input":  # a matrix: the column's field may be what is named
        named.add(validator.names[index % validator.width])
    with pytest.raises((ValidationError, MalformedRequestError)) as refused:
        validate(validator, doc)
    message = str(refused.value)
    assert any(repr(name) in message for name in named), (mutation, message)
    if mutation == "name":
        assert all(repr(name) in message for name in validator.names) or "'input'" in message


class TestDeclaredIntegerDatatypes:
    signature = Signature(
        inputs=(FieldSpec("a", "float32"), FieldSpec("b", "float32")), layout="matrix"
    )

    def test_a_fraction_in_an_int64_tensor_is_refused(self) -> None:
        tensor = Tensor("input", "INT64", (1, 2), [1, 17.99])
        with pytest.raises(
            ValidationError,
            match=r"input 'input' field 'b' must be an integer, got 17.99 \(row 0\)",
        ):
            InputValidator(self.signature, 10).from_tensors([tensor])

    @pytest.mark.parametrize("value", [300, -1])
    def test_out_of_range_for_uint8_is_refused(self, value: int) -> None:
        tensor = Tensor("input", "UINT8", (2, 2), [1, 2, 3, value])
        with pytest.raises(
            ValidationError, match=rf"field 'b' value {value} is out of range \[0, 255\].*row 1"
        ):
            InputValidator(self.signature, 10).from_tensors([tensor])

    def test_integral_floats_and_in_range_integers_are_accepted(self) -> None:
        tensor = Tensor("input", "UINT8", (1, 2), [255, 3.0])
        prepared = InputValidator(self.signature, 10).from_tensors([tensor])
        np.testing.assert_array_equal(prepared.model_input, [[255, 3]])


def test_an_unknown_tensor_name_lists_the_expected_names() -> None:
    signature = Signature(inputs=(FieldSpec("a", "float32"), FieldSpec("b", "float32")))
    with pytest.raises(
        ValidationError, match=r"unexpected input field\(s\) 'nope'; this model takes 'a', 'b'"
    ) as refused:
        InputValidator(signature, 10).from_tensors([Tensor("nope", "FP32", (1, 2), [1.0, 2.0])])
    assert "named 'input'" in str(refused.value)


class TestServedSignature:
    def test_a_float64_matrix_is_served_as_the_float32_the_model_takes(self) -> None:
        signature = Signature(inputs=(FieldSpec("a", "float64"), FieldSpec("b", "float64")))
        served = served_signature(signature, {"input": np.dtype("float32")})
        validator = InputValidator(served, 10)
        assert validator.matrix_datatype == "FP32"
        assert [s.dtype for s in served.inputs] == ["float32", "float32"]
        with pytest.raises(ValidationError, match="out of range"):
            validator.from_tensors([Tensor("input", "FP64", (1, 2), [1.0, 1e39])])

    def test_columns_narrow_floats_only(self) -> None:
        signature = Signature(
            inputs=(FieldSpec("x", "float64"), FieldSpec("n", "int64"), FieldSpec("c", "object")),
            layout="columns",
        )
        takes = {"x": np.dtype("float32"), "n": np.dtype("int64"), "c": np.dtype("object")}
        served = served_signature(signature, takes)
        assert [s.dtype for s in served.inputs] == ["float32", "int64", "object"]
        metadata = tensor_metadata(served, None)
        assert [t["datatype"] for t in metadata["inputs"]] == ["FP32", "INT64", "BYTES"]

    def test_a_model_taking_float64_keeps_it(self) -> None:
        signature = Signature(inputs=(FieldSpec("a", "float64"),))
        assert served_signature(signature, {"input": np.dtype("float64")}) == signature


@pytest.mark.parametrize(
    ("body", "literal", "where"),
    [
        (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [NaN]}]}',
         "NaN", "in input 'x'"),
        (b'{"instances": [{"amount": -Infinity}]}', "-Infinity", "in field 'amount'"),
        (b"[Infinity]", "Infinity", "line 1 column 2"),
    ],
)  # fmt: skip
def test_nan_and_infinity_literals_are_explained(body: bytes, literal: str, where: str) -> None:
    with pytest.raises(MalformedRequestError) as refused:
        decode_json(body)
    message = str(refused.value)
    assert f"not valid JSON: {literal} at line 1" in message
    assert where in message
    assert "JSON has no NaN or Infinity: send null" in message
    assert "binary tensor extension" in message


def test_other_broken_json_keeps_the_parsers_message() -> None:
    with pytest.raises(MalformedRequestError, match="not valid JSON: invalid literal"):
        decode_json(b'{"a": nope}')
