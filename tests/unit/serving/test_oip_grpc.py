"""The Open Inference Protocol's gRPC messages <-> the pipeline's tensors: raw and typed
values, errors naming the field, raw answers; and the committed generated module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from modelyard.errors import MalformedRequestError, PayloadTooLargeError
from modelyard.registry.signature import FieldSpec, Signature
from modelyard.serving.wire import binary, oip_grpc
from modelyard.serving.wire.oip import InferRequest, tensor_metadata
from modelyard.serving.wire.proto import messages as pb

PROTO_DIR = Path(oip_grpc.__file__).parent / "proto"


def raw_request(*arrays: tuple[str, str, np.ndarray]) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="m")
    for name, datatype, values in arrays:
        message.inputs.add(name=name, datatype=datatype, shape=list(values.shape))
        message.raw_input_contents.append(binary.encode_tensor(values))
    return message


def typed_request(
    name: str, datatype: str, shape: list[int], **contents: Any
) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="m")
    message.inputs.add(
        name=name, datatype=datatype, shape=shape, contents=pb.InferTensorContents(**contents)
    )
    return message


class TestRequests:
    def test_raw_values_become_an_array_of_the_datatype(self) -> None:
        rows = np.arange(6, dtype=np.float32).reshape(2, 3)
        message = raw_request(("input", "FP32", rows))
        message.id = "r-1"
        message.outputs.add(name="label")
        request = oip_grpc.parse_request(message, 100)
        assert request.id == "r-1"
        assert request.outputs == ("label",)
        [tensor] = request.inputs
        assert (tensor.name, tensor.datatype, tensor.shape) == ("input", "FP32", (2, 3))
        assert isinstance(tensor.data, np.ndarray)
        assert tensor.data.tolist() == rows.ravel().tolist()

    def test_raw_bytes_and_bool_tensors(self) -> None:
        words = np.array(["a", "é"], dtype=object)
        flags = np.array([True, False])
        request = oip_grpc.parse_request(
            raw_request(("w", "BYTES", words), ("f", "BOOL", flags)), 100
        )
        assert request.inputs[0].data == ["a", "é"]
        assert np.asarray(request.inputs[1].data).tolist() == [True, False]

    def test_typed_values_in_the_datatypes_field(self) -> None:
        request = oip_grpc.parse_request(
            typed_request("x", "FP32", [1, 2], fp32_contents=[1.5, float("nan")]), 100
        )
        data = request.inputs[0].data
        assert isinstance(data, np.ndarray)
        assert data.dtype == np.float32
        assert data[0] == 1.5
        assert np.isnan(data[1])  # NaN reaches the validators as binary data's does

    def test_narrow_integers_stay_a_list_for_the_range_check(self) -> None:
        request = oip_grpc.parse_request(typed_request("x", "INT8", [2], int_contents=[3, 300]), 10)
        assert request.inputs[0].data == [3, 300]  # hosting.validation refuses the 300

    def test_typed_bytes_are_text(self) -> None:
        request = oip_grpc.parse_request(
            typed_request("x", "BYTES", [2], bytes_contents=[b"a", b"b"]), 10
        )
        assert request.inputs[0].data == ["a", "b"]

    def test_parameters_timeout_and_classification(self) -> None:
        message = raw_request(("input", "FP32", np.zeros((1, 2), np.float32)))
        message.parameters["timeout"].int64_param = 250_000
        output = message.outputs.add(name="probabilities")
        output.parameters["classification"].int64_param = 2
        request = oip_grpc.parse_request(message, 10)
        assert request.timeout_s == 0.25
        assert request.classification == {"probabilities": 2}


def refused(message: pb.ModelInferRequest, max_values: int = 100) -> str:
    with pytest.raises(MalformedRequestError) as raised:
        oip_grpc.parse_request(message, max_values)
    return raised.value.message


class TestMalformedRequests:
    def test_no_inputs(self) -> None:
        assert refused(pb.ModelInferRequest(model_name="m")) == (
            "'inputs' must hold at least one tensor"
        )

    def test_raw_contents_one_per_input(self) -> None:
        message = raw_request(("a", "FP32", np.zeros(2, np.float32)))
        message.raw_input_contents.append(b"")
        assert refused(message).startswith("raw_input_contents has 2 entries for 1 inputs")

    def test_raw_bytes_that_do_not_fit_the_shape_name_the_entry(self) -> None:
        message = raw_request(("input", "FP32", np.zeros((2, 3), np.float32)))
        message.raw_input_contents[0] = message.raw_input_contents[0][:-4]
        assert refused(message) == (
            "input 'input': raw_input_contents[0] has 20 bytes but shape [2, 3] of FP32 "
            "needs 24 (6 values of 4 bytes)"
        )

    def test_raw_and_typed_values_together(self) -> None:
        message = raw_request(("a", "FP32", np.zeros(1, np.float32)))
        message.inputs[0].contents.fp32_contents.append(1.0)
        assert "has 'contents' but the request has raw_input_contents" in refused(message)

    def test_an_input_without_values(self) -> None:
        message = pb.ModelInferRequest(model_name="m")
        message.inputs.add(name="a", datatype="FP32", shape=[1])
        assert refused(message) == (
            "input 'a' has no values: send them in its 'contents' or in raw_input_contents"
        )

    def test_values_in_another_datatypes_field(self) -> None:
        message = typed_request("a", "FP32", [1], int_contents=[1])
        assert refused(message) == (
            "input 'a' of datatype FP32 takes its values in contents.fp32_contents, "
            "got contents.int_contents"
        )

    def test_a_count_that_does_not_match_the_shape(self) -> None:
        assert refused(typed_request("a", "FP64", [2, 2], fp64_contents=[1.0])) == (
            "input 'a': shape [2, 2] holds 4 values but contents.fp64_contents has 1"
        )

    def test_fp16_travels_raw_only(self) -> None:
        message = pb.ModelInferRequest(model_name="m")
        message.inputs.add(name="h", datatype="FP16", shape=[1], contents=pb.InferTensorContents())
        assert refused(message).startswith("input 'h': FP16 values travel in raw_input_contents")

    @pytest.mark.parametrize(
        ("name", "datatype", "shape", "expected"),
        [
            ("", "FP32", [1], "inputs[0] needs a non-empty 'name'"),
            ("a", "FLOAT", [1], "input 'a': 'datatype' must be one of BOOL, BYTES"),
            ("a", "FP32", [], "input 'a': 'shape' must be a non-empty list"),
            ("a", "FP32", [2, -1], "input 'a': 'shape' must be a non-empty list"),
        ],
    )
    def test_the_envelope_names_the_field(
        self, name: str, datatype: str, shape: list[int], expected: str
    ) -> None:
        message = typed_request(name, datatype, shape, fp32_contents=[1.0])
        assert refused(message).startswith(expected)

    def test_a_parameter_without_a_value(self) -> None:
        message = typed_request("a", "FP32", [1], fp32_contents=[1.0])
        message.parameters["timeout"].CopyFrom(pb.InferParameter())
        assert refused(message) == "parameter 'timeout' has no value"

    def test_a_bad_timeout_reads_as_over_rest(self) -> None:
        message = typed_request("a", "FP32", [1], fp32_contents=[1.0])
        message.parameters["timeout"].string_param = "soon"
        assert refused(message) == (
            "parameters.timeout must be a positive integer (microseconds), got 'soon'"
        )

    def test_an_output_without_a_name(self) -> None:
        message = typed_request("a", "FP32", [1], fp32_contents=[1.0])
        message.outputs.add()
        assert refused(message) == "outputs[0] needs a non-empty 'name'"

    def test_a_huge_declared_shape_is_refused_before_its_values(self) -> None:
        message = pb.ModelInferRequest(model_name="m")
        message.inputs.add(name="a", datatype="FP32", shape=[10**6, 30])
        message.raw_input_contents.append(b"")
        with pytest.raises(PayloadTooLargeError, match="declares 30000000 values"):
            oip_grpc.parse_request(message, 1000)


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(
        st.sampled_from([np.float32, np.float64, np.int8, np.int32, np.int64, np.uint16, np.bool_]),
        hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
    )
)
def test_raw_values_arrive_as_sent(values: np.ndarray) -> None:
    datatype = {v: k for k, v in binary.DTYPES.items()}[values.dtype.newbyteorder("<")]
    [tensor] = oip_grpc.parse_request(raw_request(("x", datatype, values)), 10_000).inputs
    assert tensor.shape == values.shape
    np.testing.assert_array_equal(np.asarray(tensor.data), values.ravel())


class TestResponses:
    outputs = {
        "label": np.array([0, 1, 1], dtype=np.int64),
        "probabilities": np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]], dtype=np.float32),
    }

    def decode(self, payload: bytes) -> tuple[pb.ModelInferResponse, dict[str, np.ndarray]]:
        response = pb.ModelInferResponse.FromString(payload)
        arrays = {}
        for tensor, raw in zip(response.outputs, response.raw_output_contents, strict=True):
            if tensor.datatype == "BYTES":
                items = binary.decode_bytes(tensor.name, raw, int(np.prod(tensor.shape)))
                arrays[tensor.name] = np.array(items, dtype=object).reshape(tensor.shape)
            else:
                dtype = binary.DTYPES[tensor.datatype]
                arrays[tensor.name] = np.frombuffer(raw, dtype).reshape(tensor.shape)
        return response, arrays

    def test_rows_of_the_batch_go_back_raw(self) -> None:
        request = InferRequest(None, [], None)
        payload = oip_grpc.encode_response("fraud", "2", request, "rid", self.outputs, 1, 3)
        response, arrays = self.decode(payload)
        assert (response.model_name, response.model_version, response.id) == ("fraud", "2", "rid")
        assert [(t.name, t.datatype, list(t.shape)) for t in response.outputs] == [
            ("label", "INT64", [2]),
            ("probabilities", "FP32", [2, 2]),
        ]
        assert not response.outputs[0].HasField("contents")
        assert arrays["label"].tolist() == [1, 1]
        np.testing.assert_array_equal(arrays["probabilities"], self.outputs["probabilities"][1:])

    def test_the_requests_own_id_and_outputs_and_classes(self) -> None:
        request = InferRequest("mine", [], ("probabilities",), classification={"probabilities": 1})
        payload = oip_grpc.encode_response("fraud", "1", request, "rid", self.outputs, 0, 2)
        response, arrays = self.decode(payload)
        assert response.id == "mine"
        assert arrays["probabilities"].tolist() == [[b"0.9:0"], [b"0.8:1"]]

    def test_metadata_keeps_a_matrix_inputs_field_order(self) -> None:
        signature = Signature(
            inputs=(FieldSpec("a", "float32"), FieldSpec("b", "float32")),
            outputs=(FieldSpec("y", "float64"),),
        )
        tensors = tensor_metadata(signature, "FP32")
        response = oip_grpc.metadata_response("m", ["1", "2"], "sklearn_skops", tensors)
        assert [(t.name, t.datatype, list(t.shape)) for t in response.inputs] == [
            ("input", "FP32", [-1, 2])
        ]
        assert [(t.name, list(t.shape)) for t in response.outputs] == [("y", [-1])]
        assert orjson.loads(response.properties["fields"]) == ["a", "b"]
        assert list(response.versions) == ["1", "2"]


def semantic(file: Any) -> bytes:
    """A ``FileDescriptorProto`` without what compilers fill in differently (json_name)."""
    copy = type(file)()
    copy.CopyFrom(file)

    def clear(messages: Any) -> None:
        for message in messages:
            for field in message.field:
                field.ClearField("json_name")
            clear(message.nested_type)

    clear(copy.message_type)
    return bytes(copy.SerializeToString(deterministic=True))


def test_the_committed_descriptor_is_compiled_from_the_proto(tmp_path: Path) -> None:
    protoc = pytest.importorskip("grpc_tools.protoc")
    from google.protobuf import descriptor_pb2

    fresh = tmp_path / "fresh.binpb"
    args = [f"-I{PROTO_DIR}", f"--descriptor_set_out={fresh}", "open_inference_grpc.proto"]
    assert protoc.main(["protoc", *args]) == 0
    [built] = descriptor_pb2.FileDescriptorSet.FromString(fresh.read_bytes()).file
    committed = (PROTO_DIR / pb.COMPILED).read_bytes()
    [stored] = descriptor_pb2.FileDescriptorSet.FromString(committed).file
    assert semantic(built) == semantic(stored), "regenerate serving/wire/proto (its __init__)"


def test_the_messages_share_a_process_with_tritonclients() -> None:
    triton = pytest.importorskip("tritonclient.grpc.service_pb2")  # same names, own pool
    message = pb.ModelInferRequest(model_name="m", id="1")
    message.inputs.add(name="input", datatype="FP32", shape=[1])
    message.raw_input_contents.append(b"\x00\x00\x80?")
    theirs = triton.ModelInferRequest.FromString(message.SerializeToString())
    assert (theirs.model_name, theirs.inputs[0].name) == ("m", "input")
    assert pb.ModelInferRequest.FromString(theirs.SerializeToString()) == message
