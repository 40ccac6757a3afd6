"""The shared image preprocessing: decoding with limits, and pixels from tensors."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from modelyard.registry.imaging import (
    ImageError,
    ImageSpec,
    ImageTooLarge,
    decode,
    encode_png,
    from_pixels,
)

SPEC = ImageSpec(16, 16, 1, max_pixels=1_000_000)


def bomb_png(width: int, height: int) -> bytes:
    """A real 1x1 PNG whose header claims ``width`` x ``height`` (CRC fixed up)."""
    data = bytearray(encode_png(np.zeros((1, 1), dtype=np.uint8)))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_a_png_decodes_to_the_models_pixels() -> None:
    image = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    pixels = decode(encode_png(image), SPEC)
    assert pixels.shape == (256,)
    assert pixels.dtype == np.uint8
    assert np.array_equal(pixels, from_pixels(image, SPEC))  # one step, whatever the source


def test_colour_and_jpeg_become_grey() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 200, 200)).save(buffer, format="JPEG")
    pixels = decode(buffer.getvalue(), SPEC)
    assert pixels.shape == (256,)
    assert abs(int(pixels.mean()) - 200) <= 2


def test_a_decompression_bomb_is_refused_from_its_header() -> None:
    with pytest.raises(ImageTooLarge, match="10000000000 pixels"):
        decode(bomb_png(100_000, 100_000), SPEC)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty"),
        (b"GIF89a" + b"\0" * 40, "not a readable PNG or JPEG"),
        (b"BM" + b"\0" * 60, "not a readable PNG or JPEG"),
        (encode_png(np.zeros((8, 8), np.uint8))[:45], "corrupt or truncated|not a readable"),
    ],
)
def test_unknown_formats_and_corrupt_files_are_named(data: bytes, match: str) -> None:
    with pytest.raises(ImageError, match=match):
        decode(data, SPEC)


def test_too_many_bytes_are_refused_before_opening() -> None:
    with pytest.raises(ImageTooLarge, match="at most 10 are accepted"):
        decode(encode_png(np.zeros((8, 8), np.uint8)), ImageSpec(16, 16, max_bytes=10))


@pytest.mark.parametrize(
    ("pixels", "match"),
    [
        (np.zeros((8, 8, 3)), "3 channel"),
        (np.full((8, 8), 300.0), r"in \[0, 255\]"),
        (np.full((8, 8), np.nan), "finite"),
        (np.zeros(8), "must be \\[height, width\\]"),
    ],
)
def test_bad_pixel_tensors_are_named(pixels: np.ndarray, match: str) -> None:
    with pytest.raises(ImageError, match=match):
        from_pixels(pixels, SPEC)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_decode_or_raise_image_error(data: bytes) -> None:
    try:
        pixels = decode(data, SPEC)
    except ImageError:
        return
    assert pixels.shape == (256,)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 20), st.integers(1, 20))
def test_every_header_past_the_limit_is_refused(width: int, height: int) -> None:
    with pytest.raises(ImageTooLarge, match="pixels"):
        decode(bomb_png(width * 1_000, height * 1_001), SPEC)


def test_a_spec_takes_grey_or_colour_only() -> None:
    with pytest.raises(ImageError, match="1 or 3 channels, not 2"):
        ImageSpec(8, 8, channels=2)
