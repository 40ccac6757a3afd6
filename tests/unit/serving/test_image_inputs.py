"""Image requests to an image model: decoded into its pixels, or refused as a 4xx."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.errors import ModelyardError, PayloadTooLargeError, ValidationError
from modelyard.registry.imaging import ImageSpec, encode_png, from_pixels
from modelyard.registry.signature import FieldSpec, Signature
from modelyard.serving.hosting.validation import InputValidator
from modelyard.serving.wire.oip import InferRequest, Tensor
from modelyard.serving.wire.status import http_status

SPEC = ImageSpec(8, 8, 1, max_pixels=10_000)
SIGNATURE = Signature(tuple(FieldSpec(f"p{i}", "float32") for i in range(64)), image=SPEC)
VALIDATOR = InputValidator(SIGNATURE, max_rows=4)
DIGIT = (np.arange(100, dtype=np.uint8).reshape(10, 10) * 2).astype(np.uint8)
EXPECTED = from_pixels(DIGIT, SPEC).astype(np.float32)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def infer(tensor: Tensor) -> np.ndarray:
    model_input = VALIDATOR.from_oip(InferRequest(None, [tensor], None)).model_input
    assert isinstance(model_input, np.ndarray)
    return model_input


def test_png_bytes_uint8_pixels_and_records_give_the_same_input() -> None:
    png = b64(encode_png(DIGIT))
    from_bytes = infer(Tensor("image", "BYTES", (2,), [png, png]))
    from_uint8 = infer(Tensor("image", "UINT8", (1, 10, 10), DIGIT.reshape(-1).tolist()))
    records = VALIDATOR.from_records([{"b64": png}]).model_input
    assert from_bytes.shape == (2, 64)
    assert from_bytes.dtype == np.float32
    for got in (from_bytes[0], from_bytes[1], from_uint8[0], np.asarray(records)[0]):
        assert np.array_equal(got, EXPECTED)


def test_pixel_records_still_work() -> None:
    prepared = VALIDATOR.from_records([EXPECTED.tolist()])
    assert np.array_equal(np.asarray(prepared.model_input)[0], EXPECTED)


@pytest.mark.parametrize(
    ("tensor", "error", "match"),
    [
        (Tensor("image", "BYTES", (1,), ["%%%"]), ValidationError, "image 0 is not valid base64"),
        (Tensor("image", "BYTES", (1,), [b64(b"GIF89a....")]), ValidationError, "PNG or JPEG"),
        (Tensor("image", "UINT8", (1, 2, 2, 3), [0] * 12), ValidationError, "3 channel"),
        (Tensor("image", "FP32", (1, 2, 2), [0, 1, 2, 900]), ValidationError, r"\[0, 255\]"),
        (Tensor("image", "UINT8", (1, 4), [0] * 4), ValidationError, "height, width"),
        (Tensor("image", "UINT8", (1, 200, 200), [0] * 40_000), PayloadTooLargeError, "200x200"),
        (Tensor("image", "BYTES", (5,), ["a"] * 5), PayloadTooLargeError, "at most 4"),
    ],
)
def test_bad_images_are_client_errors_naming_the_problem(
    tensor: Tensor, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match) as caught:
        infer(tensor)
    assert isinstance(caught.value, ModelyardError)
    assert 400 <= http_status(caught.value) < 500


def test_a_record_must_hold_only_b64() -> None:
    with pytest.raises(ValidationError, match='record 1 must be {"b64"'):
        VALIDATOR.from_records([{"b64": b64(encode_png(DIGIT))}, {"b64": "x", "other": 1}])


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_are_an_answer_or_a_4xx(data: bytes) -> None:
    status = 200
    try:
        infer(Tensor("image", "BYTES", (1,), [b64(data)]))
    except ModelyardError as error:
        status = http_status(error)
    assert status == 200 or 400 <= status < 500
