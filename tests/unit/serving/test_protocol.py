"""Protocol envelopes and responses: structure errors are 400s, responses follow the spec."""

from __future__ import annotations

import contextlib

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.errors import (
    MalformedRequestError,
    ModelyardError,
    PayloadTooLargeError,
    ValidationError,
)
from modelyard.registry.signature import Signature
from modelyard.serving.wire.json_body import decode_json
from modelyard.serving.wire.oip import (
    check_outputs,
    check_tensor,
    datatype_of,
    flatten,
    infer_response,
    parse_infer_request,
    parse_tensor,
    tensor_metadata,
)
from modelyard.serving.wire.records import (
    RecordsRequest,
    encode_response,
    parse_records_request,
    records_response,
)


def tensor(**changes: object) -> dict[str, object]:
    raw: dict[str, object] = {"name": "input", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}
    raw.update(changes)
    return raw


class TestTensors:
    def test_flat_and_nested_data_agree(self) -> None:
        assert flatten([[1, 2], [3, 4]], [2, 2], "x") == [1, 2, 3, 4]
        assert flatten([1, 2, 3, 4], [2, 2], "x") == [1, 2, 3, 4]

    def test_ragged_nesting(self) -> None:
        with pytest.raises(MalformedRequestError, match="does not match shape"):
            flatten([[1, 2], [3]], [2, 2], "x")

    def test_count_must_match_shape(self) -> None:
        with pytest.raises(
            MalformedRequestError, match=r"shape \[1, 2\] holds 2 values but 'data' has 3"
        ):
            parse_tensor(tensor(data=[1, 2, 3]), 100)

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"name": ""}, "non-empty string 'name'"),
            ({"datatype": "FLOAT"}, "'datatype' must be one of"),
            ({"shape": [1, -2]}, "'shape' must be a non-empty list"),
            ({"shape": [1, True]}, "'shape' must be a non-empty list"),
            ({"shape": []}, "'shape' must be a non-empty list"),
            ({"data": "1,2"}, "'data' must be a list"),
        ],
    )
    def test_broken_tensors(self, change: dict[str, object], message: str) -> None:
        with pytest.raises(MalformedRequestError, match=message):
            check_tensor(tensor(**change), 0)

    def test_a_huge_declared_shape_is_too_large(self) -> None:
        with pytest.raises(PayloadTooLargeError, match="more than the 100 this server accepts"):
            parse_tensor(tensor(shape=[10**6, 10**6]), 100)

    def test_binary_data_without_the_header_is_refused(self) -> None:
        raw = tensor()
        del raw["data"]
        raw["parameters"] = {"binary_data_size": 8}
        with pytest.raises(MalformedRequestError, match="no 'Inference-Header-Content-Length'"):
            check_tensor(raw, 0)

    def test_datatypes_of_numpy(self) -> None:
        assert datatype_of(np.dtype("float32")) == "FP32"
        assert datatype_of("int64") == "INT64"
        assert datatype_of(np.dtype(object)) == "BYTES"
        assert datatype_of(np.dtype("bool")) == "BOOL"


class TestEnvelope:
    def test_parses_id_outputs_and_timeout(self) -> None:
        request = parse_infer_request(
            {
                "id": "42",
                "inputs": [tensor()],
                "outputs": [{"name": "label"}],
                "parameters": {"timeout": 2500},
            },
            100,
        )
        assert request.id == "42"
        assert request.outputs == ("label",)
        assert request.timeout_s == pytest.approx(0.0025)
        assert request.inputs[0].data == [1, 2]

    @pytest.mark.parametrize(
        ("doc", "message"),
        [
            ([1, 2], "must be a JSON object"),
            ({}, "'inputs' must be a non-empty list"),
            ({"inputs": []}, "'inputs' must be a non-empty list"),
            ({"inputs": [1]}, r"inputs\[0\] must be an object"),
            ({"inputs": [tensor()], "id": 5}, "'id' must be a string"),
            ({"inputs": [tensor()], "id": None}, "'id' must be a string, got null"),
            ({"inputs": [tensor()], "outputs": None}, "'outputs' must be a list"),
            ({"inputs": [tensor()], "parameters": None}, "'parameters' must be an object"),
            ({"inputs": [tensor()], "parameters": {"x": [1]}}, "parameter 'x' must be a string"),
            ({"inputs": [tensor(parameters={"y": {}})]}, "parameter 'y' must be a string"),
            ({"inputs": [tensor()], "outputs": "label"}, "'outputs' must be a list"),
            ({"inputs": [tensor()], "outputs": [{}]}, r"outputs\[0\] must be an object"),
            ({"inputs": [tensor()], "parameters": []}, "'parameters' must be an object"),
            ({"inputs": [tensor()], "parameters": {"timeout": -1}}, "parameters.timeout"),
        ],
    )
    def test_broken_envelopes(self, doc: object, message: str) -> None:
        with pytest.raises(MalformedRequestError, match=message):
            parse_infer_request(doc, 100)

    def test_bad_json(self) -> None:
        with pytest.raises(MalformedRequestError, match="not valid JSON"):
            decode_json(b'{"inputs": [1, 2')
        with pytest.raises(MalformedRequestError, match="body is empty"):
            decode_json(b"")
        with pytest.raises(MalformedRequestError, match="not valid JSON"):
            decode_json(b"[NaN]")

    def test_records_envelope(self) -> None:
        assert parse_records_request({"instances": [1]}) == RecordsRequest([1], 3)
        assert parse_records_request({"instances": [1], "top_k": 5}).top_k == 5
        with pytest.raises(MalformedRequestError, match='"instances"'):
            parse_records_request({"inputs": []})
        for bad in (0, -1, "3", 2.5, True):
            with pytest.raises(MalformedRequestError, match="'top_k' must be a positive"):
                parse_records_request({"instances": [1], "top_k": bad})

    def test_a_labelled_classifier_answers_names_and_its_top_k(self) -> None:
        scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]], dtype=np.float32)
        outputs = {"probabilities": scores, "label": np.array([1, 0])}
        request = RecordsRequest([{"b64": ""}] * 2, top_k=2)
        body = orjson.loads(
            encode_response("m", "1", request, "rid", outputs, 0, 2, ("cat", "dog", "eel"))
        )
        first, second = body["predictions"]
        assert first["label"] == "dog"
        assert [t["label"] for t in first["top"]] == ["dog", "eel"]
        assert first["top"][0]["probability"] == pytest.approx(0.7)
        assert [t["label"] for t in second["top"]] == ["cat", "dog"]  # a tie: class order
        assert second["probabilities"] == pytest.approx([0.5, 0.25, 0.25])
        many = RecordsRequest([{"b64": ""}], top_k=50)
        answer = orjson.loads(encode_response("m", "1", many, "r", outputs, 0, 1, ("a", "b", "c")))
        assert len(answer["predictions"][0]["top"]) == 3
        # without labels (or not one per class) the model's outputs as they are
        plain = orjson.loads(encode_response("m", "1", request, "rid", outputs, 0, 2))
        assert plain["predictions"][0]["label"] == 1

    def test_unknown_outputs(self, matrix_signature: Signature) -> None:
        check_outputs(("label",), matrix_signature)
        with pytest.raises(ValidationError, match="unknown output.*'colour'.*returns 'label'"):
            check_outputs(("colour",), matrix_signature)


@settings(max_examples=150, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=3),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=4),
        max_leaves=12,
    )
)
def test_any_json_document_raises_only_our_errors(doc: object) -> None:
    with contextlib.suppress(ModelyardError):
        parse_infer_request(doc, 1000)


OUTPUTS = {
    "label": np.array([1, 0, 1], dtype=np.int64),
    "probabilities": np.array([[0.25, 0.75], [0.5, 0.5], [0.0, 1.0]], dtype=np.float32),
}


class TestResponses:
    def test_infer_response_slices_this_requests_rows(self) -> None:
        body = orjson.loads(infer_response("fraud", "3", "abc", OUTPUTS, 1, 3, None))
        assert body["model_name"] == "fraud"
        assert body["model_version"] == "3"
        assert body["id"] == "abc"
        label, proba = body["outputs"]
        assert label == {"name": "label", "datatype": "INT64", "shape": [2], "data": [0, 1]}
        assert proba == {
            "name": "probabilities",
            "datatype": "FP32",
            "shape": [2, 2],
            "data": [0.5, 0.5, 0.0, 1.0],
        }

    def test_requested_outputs_only(self) -> None:
        body = orjson.loads(infer_response("fraud", "3", "abc", OUTPUTS, 0, 1, ("probabilities",)))
        assert [o["name"] for o in body["outputs"]] == ["probabilities"]

    def test_string_outputs(self) -> None:
        outputs = {"label": np.array(["cat", "dog"], dtype=object)}
        body = orjson.loads(infer_response("m", "1", "x", outputs, 0, 2, None))
        assert body["outputs"][0]["datatype"] == "BYTES"
        assert body["outputs"][0]["data"] == ["cat", "dog"]

    def test_records_response_one_object_per_record(self) -> None:
        body = orjson.loads(records_response("fraud", "3", "abc", OUTPUTS, 0, 2))
        assert body["predictions"] == [
            {"label": 1, "probabilities": [0.25, 0.75]},
            {"label": 0, "probabilities": [0.5, 0.5]},
        ]

    def test_records_response_single_output_is_bare(self) -> None:
        outputs = {"prediction": np.array([1.5, 2.5])}
        body = orjson.loads(records_response("m", "1", "x", outputs, 1, 2))
        assert body["predictions"] == [2.5]

    def test_metadata_of_a_matrix_model(self, matrix_signature: Signature) -> None:
        meta = tensor_metadata(matrix_signature, "FP32")
        assert meta["inputs"] == [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": [-1, 3],
                "parameters": {"fields": ["amount", "age", "score"]},
            }
        ]
        assert meta["outputs"][1] == {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}

    def test_metadata_of_a_columns_model(self, columns_signature: Signature) -> None:
        meta = tensor_metadata(columns_signature, None)
        assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
            ("amount", "FP64"),
            ("count", "INT64"),
            ("member", "BOOL"),
            ("country", "BYTES"),
        ]


def test_records_response_drops_a_trailing_singleton_dimension() -> None:
    outputs = {"prediction": np.array([[1.5], [2.5]], dtype=np.float32)}
    assert orjson.loads(records_response("m", "1", "x", outputs, 0, 2))["predictions"] == [1.5, 2.5]
