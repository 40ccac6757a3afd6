"""A user's own labelled images for training, fine-tuning, calibration and evaluation
(``modelyard optimize ... --data PATH``), prepared by the step the server and the edge
bundle use (``registry.imaging``), so that a model is judged on what it will be sent.

Two forms:

* an ``.npz`` holding ``images`` (uint8, ``[n, height, width]`` or ``[n, height,
  width, channels]`` with 1, 3 or 4 channels, any size) and ``labels`` (``[n]``: class
  indices, or class names as strings); read without pickle;
* a folder of class-named subfolders of PNG or JPEG files (``data/cat/001.png``).

Anything else is a ``ValidationError`` naming the file and the problem.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from modelyard.errors import ValidationError
from modelyard.registry.imaging import ImageError, ImageSpec, decode, prepare

__all__ = ["class_indices", "load_images"]

SUFFIXES = (".png", ".jpg", ".jpeg")
# Fewer images than this cannot be split into training and held-out parts that mean much.
MIN_IMAGES = 8


def load_images(path: Path, spec: ImageSpec) -> tuple[np.ndarray, np.ndarray]:
    """The images at ``path`` as prepared pixels (float32 ``[n, spec.values]``, values
    0-255) and their labels as given (integers or strings, ``[n]``)."""
    if path.is_dir():
        pixels, labels = _folder(path, spec)
    elif path.is_file() and path.suffix == ".npz":
        pixels, labels = _npz(path, spec)
    else:
        raise ValidationError(
            f"--data {path}: expected an .npz file (images and labels) or a folder of "
            "class-named subfolders of PNG/JPEG images"
        )
    if len(pixels) < MIN_IMAGES:
        raise ValidationError(f"--data {path}: {len(pixels)} images; at least {MIN_IMAGES}")
    return pixels, labels


def class_indices(
    labels: np.ndarray, classes: Sequence[str] | None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """``labels`` as class indices into ``classes`` and the classes. Integer labels are
    indices; strings are class names. ``classes`` None (training): the classes are
    ``0..max`` for integers, the sorted names for strings."""
    if labels.dtype.kind in "iu":
        if labels.size and labels.min() < 0:
            raise ValidationError(f"data labels must be class indices >= 0, got {labels.min()}")
        if classes is None:
            classes = tuple(str(i) for i in range(int(labels.max()) + 1))
        if labels.size and labels.max() >= len(classes):
            raise ValidationError(
                f"data label {int(labels.max())} is not a class of this model "
                f"({len(classes)} classes: 0 to {len(classes) - 1})"
            )
        return labels.astype(np.int64), tuple(classes)
    names = labels.astype(str)
    if classes is None:
        classes = tuple(sorted(set(names.tolist())))
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted(set(names.tolist()) - set(index))
    if unknown:
        raise ValidationError(f"data classes {unknown} are not this model's labels {list(classes)}")
    return np.array([index[name] for name in names.tolist()], dtype=np.int64), tuple(classes)


def _folder(path: Path, spec: ImageSpec) -> tuple[np.ndarray, np.ndarray]:
    folders = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ValidationError(
            f"--data {path}: no class folders; put each class's PNG/JPEG images in a "
            "subfolder named after the class"
        )
    pixels, labels = [], []
    for folder in folders:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)
        if not files:
            raise ValidationError(f"--data {path}: class folder {folder.name!r} has no PNG/JPEG")
        for file in files:
            try:
                pixels.append(decode(file.read_bytes(), spec))
            except ImageError as error:
                raise ValidationError(f"--data {file}: {error}") from None
            labels.append(folder.name)
    return np.stack(pixels).astype(np.float32), np.array(labels)


def _npz(path: Path, spec: ImageSpec) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            missing = {"images", "labels"} - set(arrays.files)
            if missing:
                raise ValidationError(
                    f"--data {path}: needs arrays 'images' and 'labels'; missing "
                    f"{sorted(missing)} (has {sorted(arrays.files)})"
                )
            images, labels = arrays["images"], arrays["labels"]
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        # ValueError: an object array, which only pickle could read
        raise ValidationError(
            f"--data {path}: not a readable .npz without pickle: {error}"
        ) from None
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise ValidationError(
            f"--data {path}: 'images' must be uint8 [n, height, width] or [n, height, "
            f"width, channels], got {images.dtype} {list(images.shape)}"
        )
    if images.ndim == 4 and images.shape[3] not in (1, 3, 4):
        raise ValidationError(f"--data {path}: images have {images.shape[3]} channels; 1, 3 or 4")
    if labels.ndim != 1 or len(labels) != len(images) or labels.dtype.kind not in "iuU":
        raise ValidationError(
            f"--data {path}: 'labels' must be [n] integers or strings, one per image; got "
            f"{labels.dtype} {list(labels.shape)} for {len(images)} images"
        )
    if images.ndim == 4 and images.shape[3] == 1:
        images = images[:, :, :, 0]
    prepared = [prepare(Image.fromarray(image), spec) for image in images]
    if not prepared:
        return np.zeros((0, spec.values), np.float32), labels
    return np.stack(prepared).astype(np.float32), labels
