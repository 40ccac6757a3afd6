"""A user's own images (``--data``): an .npz or a folder of class folders, prepared as
the server prepares images, and every malformed form refused naming the problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelyard.errors import ValidationError
from modelyard.optimize.datasets import class_indices, load_images
from modelyard.registry.imaging import ImageSpec, decode, encode_png

SPEC = ImageSpec(8, 8, 1)


def images(count: int, size: int = 10, channels: int = 0) -> np.ndarray:
    shape = (count, size, size, channels) if channels else (count, size, size)
    return np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)


def test_an_npz_is_prepared_like_a_served_image(tmp_path: Path) -> None:
    pixels = images(8)
    np.savez(tmp_path / "d.npz", images=pixels, labels=np.arange(8) % 2)
    prepared, labels = load_images(tmp_path / "d.npz", SPEC)
    assert prepared.shape == (8, 64)
    assert prepared.dtype == np.float32
    np.testing.assert_array_equal(prepared[0], decode(encode_png(pixels[0]), SPEC))
    assert labels.tolist() == [0, 1] * 4


def test_colour_npz_images_become_the_models_grey(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", images=images(8, channels=3), labels=np.array(["a", "b"] * 4))
    prepared, labels = load_images(tmp_path / "d.npz", SPEC)
    assert prepared.shape == (8, 64)
    indices, classes = class_indices(labels, None)
    assert indices.tolist() == [0, 1] * 4
    assert classes == ("a", "b")


def test_a_folder_of_class_folders(tmp_path: Path) -> None:
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        for i, image in enumerate(images(4)):
            (tmp_path / name / f"{i}.png").write_bytes(encode_png(image))
    (tmp_path / "cat" / "notes.txt").write_text("ignored: not an image file")
    prepared, labels = load_images(tmp_path, SPEC)
    assert prepared.shape == (8, 64)
    assert labels.tolist() == ["cat"] * 4 + ["dog"] * 4


def test_labels_map_onto_the_models_classes() -> None:
    indices, classes = class_indices(np.array(["dog", "cat", "dog"]), ("cat", "dog", "eel"))
    assert indices.tolist() == [1, 0, 1]
    assert classes == ("cat", "dog", "eel")
    assert class_indices(np.array([2, 0]), None)[1] == ("0", "1", "2")
    with pytest.raises(ValidationError, match=r"\['fox'\] are not this model's labels"):
        class_indices(np.array(["fox", "cat"]), ("cat", "dog"))
    with pytest.raises(ValidationError, match="label 5 is not a class"):
        class_indices(np.array([5]), ("cat", "dog"))


def corrupt_folder(path: Path) -> Path:
    (path / "cat").mkdir(parents=True)
    for i, image in enumerate(images(8)):
        (path / "cat" / f"{i}.png").write_bytes(encode_png(image))
    (path / "cat" / "broken.png").write_bytes(encode_png(images(1)[0])[:40])
    return path


def npz(path: Path, **arrays: object) -> Path:
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: p / "missing.npz", "expected an .npz file"),
        (lambda p: npz(p / "d.npz", images=images(8)), r"missing \['labels'\]"),
        (lambda p: npz(p / "d.npz", images=images(8).astype(np.float32), labels=np.zeros(8)),
         "'images' must be uint8"),
        (lambda p: npz(p / "d.npz", images=images(8), labels=np.zeros(3, dtype=int)),
         "one per image"),
        (lambda p: npz(p / "d.npz", images=images(8, channels=2), labels=np.zeros(8, int)),
         "2 channels"),
        (lambda p: npz(p / "d.npz", images=images(3), labels=np.zeros(3, dtype=int)),
         "3 images; at least 8"),
        (lambda p: npz(p / "d.npz", images=np.array([None] * 8), labels=np.zeros(8)),
         "without pickle"),
        (lambda p: p, "no class folders"),
        (corrupt_folder, "broken.png: image is not a readable PNG"),
    ],
)  # fmt: skip
def test_bad_data_is_refused_naming_the_problem(tmp_path: Path, make: object, match: str) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(ValidationError, match=match):
        load_images(path, SPEC)
