"""The one preprocessing step of image models, shared by training, serving and the
edge bundle: decode (PNG or JPEG only, pixel count checked from the header before any
pixel is decoded), convert to the model's channels, resize to its size, and flatten to
uint8 pixels in row-major (height, width, channel) order. Scaling and normalising
happen inside the ONNX graph, so these pixels are all a caller must get right.

Self-contained on purpose (numpy and Pillow only, no modelyard import): the edge
bundle ships this very file next to its runner, so a device decodes exactly as the
server does. Errors are ``ImageError`` (a ``ValueError``) with a message naming the
problem; the server turns them into 4xx answers.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

FORMATS = ("PNG", "JPEG")
# Modes that mean one picture in grey or colour; anything else (CMYK, 16-bit, float) is
# refused rather than guessed at.
_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA"}
_CHANNEL_MODES = {1: "L", 3: "RGB"}


class ImageError(ValueError):
    """An image that cannot become the model's input; the message says why."""


class ImageTooLarge(ImageError):
    """An image over the byte or pixel limit (a decompression bomb among them)."""


@dataclass(frozen=True)
class ImageSpec:
    """What an image model takes: its input ``height`` x ``width`` x ``channels`` (1 or
    3), its class ``labels`` in output order, and the largest image it decodes
    (``max_pixels``: a decompression bomb is refused from its header, ``max_bytes``)."""

    height: int
    width: int
    channels: int = 1
    labels: tuple[str, ...] = ()
    max_pixels: int = 4096 * 4096
    max_bytes: int = 8 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.channels not in _CHANNEL_MODES:
            raise ImageError(f"an image model takes 1 or 3 channels, not {self.channels}")
        if min(self.height, self.width, self.max_pixels, self.max_bytes) < 1:
            raise ImageError("image height, width, max_pixels and max_bytes must be >= 1")

    @property
    def values(self) -> int:
        """Pixel values a prepared image holds (the model's input width)."""
        return self.height * self.width * self.channels

    def to_dict(self) -> dict[str, object]:
        return {
            "height": self.height,
            "width": self.width,
            "channels": self.channels,
            "labels": list(self.labels),
            "max_pixels": self.max_pixels,
            "max_bytes": self.max_bytes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ImageSpec:
        labels = data.get("labels") or ()
        return cls(
            height=int(data["height"]),  # type: ignore[call-overload]
            width=int(data["width"]),  # type: ignore[call-overload]
            channels=int(data.get("channels", 1)),  # type: ignore[call-overload]
            labels=tuple(str(label) for label in labels),  # type: ignore[attr-defined]
            max_pixels=int(data.get("max_pixels", 4096 * 4096)),  # type: ignore[call-overload]
            max_bytes=int(data.get("max_bytes", 8 * 1024 * 1024)),  # type: ignore[call-overload]
        )


def decode(data: bytes, spec: ImageSpec) -> np.ndarray:
    """Encoded PNG/JPEG bytes -> the model's prepared pixels (``prepare``)."""
    if len(data) > spec.max_bytes:
        raise ImageTooLarge(f"image is {len(data)} bytes; at most {spec.max_bytes} are accepted")
    if not data:
        raise ImageError("image is empty (0 bytes)")
    try:
        # formats=: anything but PNG and JPEG (TIFF, BMP, PSD, ...) is refused by its
        # magic bytes, before a decoder for it is ever started.
        with warnings.catch_warnings():  # our own limit below decides, and says so
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as error:
        raise ImageTooLarge(f"image refused as a decompression bomb: {error}") from None
    except Exception:  # Pillow raises UnidentifiedImageError, OSError, SyntaxError...
        raise ImageError(
            f"image is not a readable {' or '.join(FORMATS)} file (first bytes {data[:8]!r})"
        ) from None
    width, height = image.size
    # The header's size, read before any pixel is decoded: a 20-byte PNG can claim
    # 100k x 100k pixels and would take gigabytes once loaded.
    if width * height > spec.max_pixels:
        raise ImageTooLarge(
            f"image is {width}x{height} = {width * height} pixels; at most {spec.max_pixels} "
            "are decoded"
        )
    if width < 1 or height < 1:
        raise ImageError(f"image has no pixels ({width}x{height})")
    if image.mode not in _MODES:
        raise ImageError(
            f"image mode {image.mode!r} is not supported; send 8-bit grey or RGB(A) images"
        )
    try:
        image.load()
    except Exception as error:
        raise ImageError(f"image data is corrupt or truncated: {error}") from None
    return prepare(image, spec)


def prepare(image: Image.Image, spec: ImageSpec) -> np.ndarray:
    """A decoded image -> uint8 pixels of shape ``(spec.values,)``: converted to the
    model's channels, then resized (bilinear) to its size."""
    if image.mode in ("RGBA", "LA", "PA"):
        # transparent pixels count as white paper, not as whatever colour they hide
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    image = image.convert(_CHANNEL_MODES[spec.channels])
    if image.size != (spec.width, spec.height):
        image = image.resize((spec.width, spec.height), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8).reshape(-1)


def from_pixels(pixels: np.ndarray, spec: ImageSpec) -> np.ndarray:
    """An image given as numbers (``[height, width]`` or ``[height, width, channels]``,
    values 0-255, any size) -> the model's prepared pixels."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3:
        raise ImageError(
            f"an image tensor must be [height, width] or [height, width, channels], got "
            f"shape {list(pixels.shape)}"
        )
    height, width, channels = pixels.shape
    if channels != spec.channels:
        raise ImageError(f"image has {channels} channel(s); this model takes {spec.channels}")
    if height * width > spec.max_pixels or height < 1 or width < 1:
        raise ImageTooLarge(
            f"image is {width}x{height}; it must hold 1 to {spec.max_pixels} pixels"
        )
    if pixels.dtype.kind == "f":
        if not np.isfinite(pixels).all() or pixels.min() < 0 or pixels.max() > 255:
            raise ImageError("image pixel values must be finite numbers in [0, 255]")
        pixels = np.rint(pixels)
    elif pixels.dtype.kind in "iu":
        if pixels.size and (pixels.min() < 0 or pixels.max() > 255):
            raise ImageError("image pixel values must be integers in [0, 255]")
    else:
        raise ImageError(f"image pixels must be numbers, got dtype {pixels.dtype}")
    array = pixels.astype(np.uint8)
    image = Image.fromarray(array[:, :, 0] if channels == 1 else array)
    return prepare(image, spec)


def encode_png(pixels: np.ndarray) -> bytes:
    """``[height, width]`` or ``[height, width, 3]`` uint8 pixels as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
