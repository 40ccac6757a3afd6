"""The binary tensor data extension: framing, every datatype, and errors naming the input."""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from modelyard.errors import MalformedRequestError, PayloadTooLargeError
from modelyard.serving.wire import binary
from modelyard.serving.wire.binary import Framed
from modelyard.serving.wire.oip import (
    InferRequest,
    datatype_of,
    encode_response,
    parse_binary_request,
    parse_infer_request,
)

NUMPY_OF = {datatype: dtype for datatype, dtype in binary.DTYPES.items()}


def frame(header: dict[str, Any], *chunks: bytes) -> tuple[bytes, bytes]:
    """A body in the binary form and its Inference-Header-Content-Length value."""
    head = orjson.dumps(header)
    return head + b"".join(chunks), str(len(head)).encode()


def binary_input(name: str, datatype: str, shape: list[int], size: int) -> dict[str, Any]:
    return {
        "name": name,
        "datatype": datatype,
        "shape": shape,
        "parameters": {"binary_data_size": size},
    }


def serialize_bytes(items: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


class TestFraming:
    @pytest.mark.parametrize("header", [b"", b"abc", b"-3", b"0", b"1.5", b"999"])
    def test_a_bad_header_length_is_refused_naming_the_header(self, header: bytes) -> None:
        with pytest.raises(MalformedRequestError, match="'Inference-Header-Content-Length'"):
            binary.split_body(b"{}" * 10, header)

    def test_splits_json_from_tensor_bytes(self) -> None:
        head, rest = binary.split_body(b'{"a":1}xyz', b"7")
        assert head == b'{"a":1}'
        assert bytes(rest) == b"xyz"

    def test_the_whole_body_may_be_json(self) -> None:
        body, header = frame(
            {"inputs": [{"name": "x", "datatype": "INT32", "shape": [1], "data": [3]}]}
        )
        request = parse_binary_request(body, header, 100)
        assert request.inputs[0].data == [3]


class TestDecoding:
    @pytest.mark.parametrize("datatype", sorted(binary.DTYPES))
    def test_every_fixed_size_datatype(self, datatype: str) -> None:
        dtype = NUMPY_OF[datatype]
        values = np.array([[0, 1, 1], [1, 0, 1]]).astype(dtype)
        body, header = frame(
            {"inputs": [binary_input("x", datatype, [2, 3], values.nbytes)]}, values.tobytes()
        )
        tensor = parse_binary_request(body, header, 100).inputs[0]
        assert tensor.datatype == datatype
        assert tensor.shape == (2, 3)
        assert isinstance(tensor.data, np.ndarray)
        assert tensor.data.dtype == dtype
        assert binary.flat_values(tensor.data) == values.ravel().tolist()
        expected_type = bool if datatype == "BOOL" else (float if "FP" in datatype else int)
        assert all(type(v) is expected_type for v in binary.flat_values(tensor.data))

    def test_numbers_are_little_endian(self) -> None:
        body, header = frame(
            {"inputs": [binary_input("x", "INT32", [1], 4)]}, (258).to_bytes(4, "little")
        )
        assert parse_binary_request(body, header, 10).inputs[0].data.tolist() == [258]

    def test_nan_reads_as_null_like_json(self) -> None:
        values = np.array([1.5, np.nan], dtype="<f4")
        body, header = frame({"inputs": [binary_input("x", "FP32", [2], 8)]}, values.tobytes())
        data = parse_binary_request(body, header, 10).inputs[0].data
        assert binary.flat_values(data) == [1.5, None]

    def test_bytes_elements(self) -> None:
        raw = serialize_bytes([b"red", b"", "gr\u00fcn".encode()])
        body, header = frame({"inputs": [binary_input("colour", "BYTES", [3], len(raw))]}, raw)
        assert parse_binary_request(body, header, 10).inputs[0].data == ["red", "", "gr\u00fcn"]

    def test_mixed_json_and_binary_inputs(self) -> None:
        amounts = np.array([1.0, 2.0], dtype="<f8")
        flags = np.array([True, False])
        body, header = frame(
            {
                "id": "r1",
                "inputs": [
                    binary_input("amount", "FP64", [2], 16),
                    {"name": "age", "datatype": "INT64", "shape": [2], "data": [30, 40]},
                    binary_input("flag", "BOOL", [2], 2),
                ],
            },
            amounts.tobytes(),
            flags.tobytes(),
        )
        request = parse_binary_request(body, header, 100)
        assert request.id == "r1"
        assert [binary.flat_values(t.data) for t in request.inputs] == [
            [1.0, 2.0],
            [30, 40],
            [True, False],
        ]

    def test_sizes_that_do_not_add_up_name_the_inputs(self) -> None:
        body, header = frame(
            {"inputs": [binary_input("a", "FP32", [2], 8), binary_input("b", "FP32", [1], 4)]},
            b"\0" * 16,
        )
        with pytest.raises(
            MalformedRequestError, match=r"add up to 12 bytes \('a' 8, 'b' 4\) but 16"
        ):
            parse_binary_request(body, header, 100)

    def test_a_size_that_does_not_fit_the_shape_names_the_input(self) -> None:
        body, header = frame({"inputs": [binary_input("amount", "FP32", [2, 3], 20)]}, b"\0" * 20)
        with pytest.raises(
            MalformedRequestError,
            match=r"input 'amount': binary_data_size is 20 bytes but shape \[2, 3\] of FP32 "
            r"needs 24",
        ):
            parse_binary_request(body, header, 100)

    @pytest.mark.parametrize(
        ("raw", "count", "match"),
        [
            (b"\x05\0\0\0abc", 1, "element 0 declares 5 bytes but only 3 remain"),
            (b"\x01\0\0\0a\x02\0", 2, "ends inside the length of element 1"),
            (serialize_bytes([b"a", b"b"]), 3, "holds 3 values but the BYTES data has 2"),
            (serialize_bytes([b"\xff"]), 1, "BYTES element 0 is not UTF-8"),
        ],
    )
    def test_bad_bytes_data_names_the_input(self, raw: bytes, count: int, match: str) -> None:
        body, header = frame({"inputs": [binary_input("colour", "BYTES", [count], len(raw))]}, raw)
        with pytest.raises(MalformedRequestError, match=f"input 'colour': .*{match}"):
            parse_binary_request(body, header, 100)

    def test_bool_bytes_must_be_0_or_1(self) -> None:
        body, header = frame({"inputs": [binary_input("flag", "BOOL", [2], 2)]}, b"\x01\x07")
        with pytest.raises(MalformedRequestError, match="input 'flag': BOOL values must be"):
            parse_binary_request(body, header, 100)

    def test_a_bad_size_parameter_names_the_input(self) -> None:
        body, header = frame({"inputs": [binary_input("x", "FP32", [1], -4)]})
        with pytest.raises(MalformedRequestError, match="input 'x': parameters.binary_data_size"):
            parse_binary_request(body, header, 100)

    def test_data_and_a_binary_size_together_are_refused(self) -> None:
        raw = {**binary_input("x", "FP32", [1], 4), "data": [1.0]}
        body, header = frame({"inputs": [raw]}, b"\0" * 4)
        with pytest.raises(MalformedRequestError, match="input 'x' has both 'data'"):
            parse_binary_request(body, header, 100)

    def test_a_huge_declared_shape_is_still_too_large(self) -> None:
        body, header = frame({"inputs": [binary_input("x", "FP32", [10**6, 10**6], 4)]}, b"\0" * 4)
        with pytest.raises(PayloadTooLargeError, match="more than the 100 this server accepts"):
            parse_binary_request(body, header, 100)

    def test_the_json_header_must_be_json(self) -> None:
        with pytest.raises(MalformedRequestError, match="not valid JSON"):
            parse_binary_request(b"{nope" + b"\0" * 4, b"5", 100)


def tensor_dtypes() -> st.SearchStrategy[np.dtype[Any]]:
    return st.sampled_from([np.dtype(d) for d in binary.DTYPES.values()])


@settings(max_examples=60, deadline=None)
@given(
    arrays=st.lists(
        tensor_dtypes().flatmap(
            lambda dtype: hnp.arrays(
                dtype,
                hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4),
                elements={"allow_nan": False} if dtype.kind == "f" else None,
            )
        ),
        min_size=1,
        max_size=4,
    ),
    texts=st.lists(st.text(max_size=8), max_size=5),
)
def test_round_trip(arrays: list[np.ndarray], texts: list[str]) -> None:
    """Tensors encoded for the wire decode to the same values, in order."""
    tensors = [(a, datatype_of(a.dtype), binary.encode_tensor(a)) for a in arrays]
    strings = np.array(texts, dtype=object)
    tensors.append((strings, "BYTES", binary.encode_tensor(strings)))
    inputs = [
        binary_input(f"t{i}", datatype, list(a.shape), len(raw))
        for i, (a, datatype, raw) in enumerate(tensors)
    ]
    body, header = frame({"inputs": inputs}, *(raw for _, _, raw in tensors))
    request = parse_binary_request(body, header, 10**6)
    for (array, datatype, _), decoded in zip(tensors, request.inputs, strict=True):
        assert decoded.datatype == datatype
        assert decoded.shape == array.shape
        assert len(decoded.data) == math.prod(array.shape)
        assert binary.flat_values(decoded.data) == array.ravel().tolist()


class TestResponses:
    outputs = {
        "label": np.array([1, 0, 1], dtype=np.int64),
        "probabilities": np.array([[0.25, 0.75], [0.5, 0.5], [0.0, 1.0]], dtype=np.float32),
        "colour": np.array(["red", "blue", "green"], dtype=object),
    }

    def encode(self, doc: dict[str, Any]) -> bytes | Framed:
        request = parse_infer_request(
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}], **doc}, 10
        )
        return encode_response("m", "1", request, "rid", self.outputs, 1, 3)

    def test_json_unless_asked(self) -> None:
        body = self.encode({})
        assert type(body) is bytes
        assert orjson.loads(body)["outputs"][0]["data"] == [0, 1]

    def test_binary_data_output_sends_every_output_as_bytes(self) -> None:
        framed = self.encode({"parameters": {"binary_data_output": True}})
        assert isinstance(framed, Framed)
        head = orjson.loads(framed.payload[: framed.header_length])
        rest = framed.payload[framed.header_length :]
        sizes = [o["parameters"]["binary_data_size"] for o in head["outputs"]]
        assert all("data" not in o for o in head["outputs"])
        assert sum(sizes) == len(rest)
        label = np.frombuffer(rest[: sizes[0]], dtype="<i8")
        probabilities = np.frombuffer(rest[sizes[0] : sizes[0] + sizes[1]], dtype="<f4")
        assert label.tolist() == [0, 1]
        assert probabilities.reshape(2, 2).tolist() == [[0.5, 0.5], [0.0, 1.0]]
        colour = binary.decode_bytes("colour", rest[sizes[0] + sizes[1] :], 2)
        assert colour == [b"blue", b"green"]
        assert head["outputs"][2]["datatype"] == "BYTES"

    def test_per_output_binary_data_overrides_the_default(self) -> None:
        framed = self.encode(
            {
                "parameters": {"binary_data_output": True},
                "outputs": [
                    {"name": "label", "parameters": {"binary_data": False}},
                    {"name": "probabilities"},
                ],
            }
        )
        assert isinstance(framed, Framed)
        head = orjson.loads(framed.payload[: framed.header_length])
        assert head["outputs"][0]["data"] == [0, 1]
        assert head["outputs"][1]["parameters"] == {"binary_data_size": 16}

    def test_only_the_outputs_asked_for_are_binary(self) -> None:
        framed = self.encode(
            {
                "outputs": [
                    {"name": "label"},
                    {"name": "colour", "parameters": {"binary_data": True}},
                ]
            }
        )
        assert isinstance(framed, Framed)
        head = orjson.loads(framed.payload[: framed.header_length])
        assert head["outputs"][0]["data"] == [0, 1]
        assert "data" not in head["outputs"][1]

    def test_all_outputs_json_by_choice_is_plain_json(self) -> None:
        body = self.encode({"outputs": [{"name": "label", "parameters": {"binary_data": False}}]})
        assert type(body) is bytes

    def test_a_non_boolean_flag_is_refused(self) -> None:
        with pytest.raises(MalformedRequestError, match="binary_data_output must be true or false"):
            self.encode({"parameters": {"binary_data_output": "yes"}})

    def test_infer_request_defaults_to_json(self) -> None:
        assert InferRequest("a", [], None).binary_default is False
