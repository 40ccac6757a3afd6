"""The Open Inference Protocol's binary tensor data extension: framing and tensor bytes.

A request or response in this form is a JSON header followed by raw tensor bytes;
the ``Inference-Header-Content-Length`` HTTP header says how long the JSON part is.
A tensor whose bytes follow carries ``"parameters": {"binary_data_size": k}``
instead of ``"data"``, and the tensors' bytes come in the order the tensors are
listed. Numbers are little-endian, BOOL is one byte a value, and BYTES is each
element's 4-byte little-endian length followed by its bytes (Triton's
``serialize_byte_tensor``).

Pure functions over bytes: the HTTP layer passes the header's value in, and
``wire.oip`` places the decoded values in its tensors.
"""

from __future__ import annotations

import math
import struct
from typing import Any, NamedTuple

import numpy as np

from modelyard.errors import MalformedRequestError

HEADER = "Inference-Header-Content-Length"
EXTENSION = "binary_tensor_data"

# The numpy dtype (little-endian) of each fixed-size datatype.
DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
_LENGTH = struct.Struct("<I")


class Framed(NamedTuple):
    """A response body in the binary form: ``payload`` starts with ``header_length``
    bytes of JSON."""

    payload: bytes
    header_length: int


def split_body(body: bytes, header: bytes) -> tuple[bytes, memoryview]:
    """The JSON part of ``body`` and the tensor bytes after it, given the value of the
    ``Inference-Header-Content-Length`` header."""
    text = header.strip()
    if not text.isdigit() or not 0 < int(text) <= len(body):
        raise MalformedRequestError(
            f"header {HEADER!r} must be the length of the JSON part of the body, a whole "
            f"number from 1 to the body's {len(body)} bytes, got "
            f"{text.decode('latin-1')[:40]!r}"
        )
    length = int(text)
    view = memoryview(body)
    return body[:length], view[length:]


def binary_size(name: str, params: dict[str, Any]) -> int | None:
    """An input's ``binary_data_size``, or None if its values are in ``data``."""
    size = params.get("binary_data_size")
    if size is None:
        return None
    if type(size) is not int or size < 0:
        raise MalformedRequestError(
            f"input {name!r}: parameters.binary_data_size must be a non-negative integer "
            f"(bytes), got {size!r}"
        )
    return size


def check_sizes(sizes: list[tuple[str, int]], available: int) -> None:
    """Refuse binary sizes that do not add up to the bytes after the JSON header."""
    total = sum(size for _, size in sizes)
    if total != available:
        listed = ", ".join(f"{name!r} {size}" for name, size in sizes) or "none"
        raise MalformedRequestError(
            f"the inputs' binary_data_size add up to {total} bytes ({listed}) but "
            f"{available} bytes follow the JSON header ({HEADER})"
        )


def decode_tensor(
    name: str, datatype: str, shape: list[int], chunk: memoryview
) -> list[Any] | np.ndarray:
    """The flat, row-major values of one input's bytes: a read-only numpy array of the
    datatype's dtype, or a list of strings for BYTES (``flat_values`` makes a list of
    the array, as the JSON form gives it)."""
    count = math.prod(shape)
    if datatype == "BYTES":
        return [
            bytes_element(name, item, i) for i, item in enumerate(decode_bytes(name, chunk, count))
        ]
    dtype = DTYPES[datatype]
    expected = count * dtype.itemsize
    if len(chunk) != expected:
        raise MalformedRequestError(
            f"input {name!r}: binary_data_size is {len(chunk)} bytes but shape {shape} of "
            f"{datatype} needs {expected} ({count} values of {dtype.itemsize} bytes)"
        )
    if datatype == "BOOL":
        raw = np.frombuffer(chunk, dtype=np.uint8)
        if raw.size and raw.max() > 1:
            raise MalformedRequestError(
                f"input {name!r}: BOOL values must be bytes 0 or 1, got {int(raw.max())}"
            )
    return np.frombuffer(chunk, dtype=dtype)


def flat_values(data: list[Any] | np.ndarray) -> list[Any]:
    """A tensor's values as JSON would give them: Python numbers, NaN as None (null)."""
    if not isinstance(data, np.ndarray):
        return data
    flat: list[Any] = data.tolist()
    if data.dtype.kind == "f" and data.size and np.isnan(data).any():
        flat = [None if v != v else v for v in flat]
    return flat


# An encoded image is the one kind of BYTES element kept as bytes: Triton's image clients
# send the file itself, which is never UTF-8 (PNG's first byte is 0x89, JPEG's 0xFF).
IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")


def bytes_element(name: str, item: bytes, index: int) -> str | bytes:
    """A BYTES element as text, or as bytes when it is a PNG or JPEG file."""
    try:
        return item.decode()
    except UnicodeDecodeError:
        if item.startswith(IMAGE_MAGIC):
            return item
        raise MalformedRequestError(
            f"input {name!r}: BYTES element {index} is not UTF-8 text (nor a PNG or JPEG file)"
        ) from None


def decode_bytes(name: str, chunk: memoryview | bytes, count: int) -> list[bytes]:
    """``count`` BYTES elements, each a 4-byte little-endian length then its bytes,
    filling ``chunk`` exactly."""
    items: list[bytes] = []
    offset, end = 0, len(chunk)
    while offset < end:
        if offset + 4 > end:
            raise MalformedRequestError(
                f"input {name!r}: BYTES data ends inside the length of element {len(items)}"
            )
        (length,) = _LENGTH.unpack_from(chunk, offset)
        offset += 4
        if offset + length > end:
            raise MalformedRequestError(
                f"input {name!r}: BYTES element {len(items)} declares {length} bytes but "
                f"only {end - offset} remain"
            )
        items.append(bytes(chunk[offset : offset + length]))
        offset += length
    if len(items) != count:
        raise MalformedRequestError(
            f"input {name!r}: the shape holds {count} values but the BYTES data has "
            f"{len(items)} elements"
        )
    return items


def encode_bytes(items: list[Any]) -> bytes:
    """BYTES elements (``bytes``, or anything else as its UTF-8 ``str``) in the binary form."""
    parts = []
    for item in items:
        data = item if isinstance(item, bytes) else str(item).encode()
        parts.append(_LENGTH.pack(len(data)))
        parts.append(data)
    return b"".join(parts)


def encode_tensor(values: np.ndarray) -> bytes:
    """A tensor's values in the binary form (its datatype: ``oip.datatype_of``)."""
    kind = values.dtype.kind
    if kind in "fiu":
        little = values.dtype.newbyteorder("<")
        return np.ascontiguousarray(values, dtype=little).tobytes()
    if kind == "b":
        return np.ascontiguousarray(values).tobytes()
    return encode_bytes(values.ravel().tolist())
