"""Image requests for image models (a signature with ``image``): encoded PNG/JPEG or
pixel tensors in, the model's prepared pixels out, through ``registry.imaging`` (the
step training and the edge bundle use too).

* Open Inference Protocol: one input named ``image``, either ``BYTES`` of shape
  ``[n]`` whose elements are base64 PNG/JPEG files (or the files themselves, as
  Triton's image clients send them in binary tensor data or gRPC), or
  ``UINT8``/``FP32`` (any numeric datatype) pixels of shape ``[n, height, width]`` or
  ``[n, height, width, channels]``, values 0-255, any size (resized like a decoded
  file).
* JSON records: ``{"instances": [{"b64": "<base64 PNG or JPEG>"}, ...]}`` (TensorFlow
  Serving's form for binary values).

Every problem is a 4xx naming the image (its row) and what was wrong: not base64, not
a PNG or JPEG, corrupt, too many pixels (read from the header before decoding: a
decompression bomb never reaches the decoder, 413), wrong channel count, bad values.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

import numpy as np

from modelyard.errors import PayloadTooLargeError, ValidationError
from modelyard.registry.imaging import ImageError, ImageSpec, ImageTooLarge, decode, from_pixels
from modelyard.serving.wire.binary import IMAGE_MAGIC
from modelyard.serving.wire.oip import Tensor

IMAGE_INPUT = "image"
B64_KEY = "b64"


class ImageInputs:
    """Turns image requests into an image model's input matrix (float32 pixels)."""

    def __init__(self, spec: ImageSpec, dtype: np.dtype[Any], check_rows: Callable[[int], None]):
        self.spec = spec
        self.dtype = dtype
        self._check_rows = check_rows

    @staticmethod
    def takes_tensors(tensors: list[Tensor]) -> bool:
        return len(tensors) == 1 and tensors[0].name == IMAGE_INPUT

    @staticmethod
    def takes_records(instances: object) -> bool:
        return (
            type(instances) is list
            and bool(instances)
            and type(instances[0]) is dict
            and B64_KEY in instances[0]
        )

    def from_tensor(self, tensor: Tensor) -> tuple[int, np.ndarray]:
        """The ``image`` tensor's rows and the model's input for them."""
        shape = tensor.shape
        if not shape:
            raise ValidationError(f"input {IMAGE_INPUT!r} needs a shape starting with the rows")
        rows = shape[0]
        self._check_rows(rows)
        if tensor.datatype == "BYTES":
            if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
                raise ValidationError(
                    f"input {IMAGE_INPUT!r} of datatype BYTES must have shape [rows] (one "
                    f"base64 PNG or JPEG each), got {list(shape)}"
                )
            data = list(tensor.data)
            return rows, self._stack([self._decoded(item, row) for row, item in enumerate(data)])
        if len(shape) not in (3, 4):
            raise ValidationError(
                f"input {IMAGE_INPUT!r} of datatype {tensor.datatype} must have shape "
                f"[rows, height, width] or [rows, height, width, channels], got {list(shape)}"
            )
        try:
            pixels = np.asarray(tensor.data, dtype=np.float64).reshape(shape)
        except (TypeError, ValueError):
            raise ValidationError(
                f"input {IMAGE_INPUT!r} must hold numbers (pixel values 0-255)"
            ) from None
        return rows, self._stack([self._pixels(image, row) for row, image in enumerate(pixels)])

    def from_records(self, instances: list[Any]) -> tuple[int, np.ndarray]:
        """``[{"b64": ...}, ...]``: the rows and the model's input for them."""
        self._check_rows(len(instances))
        images = []
        for row, record in enumerate(instances):
            if type(record) is not dict or set(record) != {B64_KEY}:
                raise ValidationError(
                    f'record {row} must be {{"{B64_KEY}": "<base64 PNG or JPEG>"}}'
                )
            images.append(self._decoded(record[B64_KEY], row))
        return len(instances), self._stack(images)

    def _decoded(self, item: object, row: int) -> np.ndarray:
        if isinstance(item, bytes) and item.startswith(IMAGE_MAGIC):  # the file itself
            raw = item
            return self._guarded(lambda: decode(raw, self.spec), row)
        if isinstance(item, bytes):
            item = item.decode("ascii", "replace")
        if type(item) is not str:
            raise ValidationError(f"image {row} must be a base64 string, got {type(item).__name__}")
        try:
            data = base64.b64decode(item, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError(f"image {row} is not valid base64") from None
        return self._guarded(lambda: decode(data, self.spec), row)

    def _pixels(self, image: np.ndarray, row: int) -> np.ndarray:
        return self._guarded(lambda: from_pixels(image, self.spec), row)

    @staticmethod
    def _guarded(prepare: Callable[[], np.ndarray], row: int) -> np.ndarray:
        try:
            return prepare()
        except ImageTooLarge as error:
            raise PayloadTooLargeError(f"image {row}: {error}") from None
        except ImageError as error:
            raise ValidationError(f"image {row}: {error}") from None

    def _stack(self, images: list[np.ndarray]) -> np.ndarray:
        return np.stack(images).astype(self.dtype)
