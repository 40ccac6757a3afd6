"""Self-contained bundles: one ``.tar.gz`` per version that loads without the registry.

A bundle holds the model file, its signature, its reference profile and row
sample, and ``manifest.json`` naming the model, the version and the sha256 of
every file; ``load_bundle`` verifies each hash before anything is loaded.
Archives are written with fixed timestamps and owners so the same version
always exports to the same bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

from modelyard.errors import IntegrityError, ValidationError
from modelyard.registry.catalog import Catalog, LoadedModel
from modelyard.registry.flavours import FLAVOURS, LoadOptions
from modelyard.registry.signature import Signature

_MODEL_FILES = {
    "onnx": "model.onnx",
    "skops": "model.skops",
    "lightgbm": "model.lightgbm.txt",
    "pickle": "model.joblib",
    "recommender": "model.recommender.npz",
}
BUNDLE_FORMAT = 1


def bundle_name(model: str, version: int) -> str:
    return f"{model}-v{version}.modelyard.tar.gz"


def export_bundle(catalog: Catalog, ref: str, destination: Path) -> Path:
    """Write the bundle of ``ref`` into the directory ``destination``; return its path."""
    name, number = catalog.resolve(ref)
    found = catalog.get_version(name, number)
    files: dict[str, bytes] = {
        _MODEL_FILES[found.flavour]: catalog.artifact_bytes(found),
        "signature.json": json.dumps(found.signature.to_dict(), indent=2).encode(),
    }
    profile = catalog.profile(name, number)
    if profile:
        files["profile.json"] = json.dumps(profile, indent=2, sort_keys=True).encode()
        if "sample_digest" in profile:
            files["profile_sample.npz"] = catalog.artifact(
                profile["sample_digest"], name="profile sample"
            )
    manifest = {
        "format": BUNDLE_FORMAT,
        "model": name,
        "version": number,
        "flavour": found.flavour,
        "metrics": found.metrics,
        "lineage": found.lineage,
        "tags": found.tags,
        "description": found.description,
        "created_at": found.created_at,
        "files": {path: hashlib.sha256(data).hexdigest() for path, data in sorted(files.items())},
    }
    files["manifest.json"] = json.dumps(manifest, indent=2, sort_keys=True).encode()
    destination.mkdir(parents=True, exist_ok=True)
    target = destination / bundle_name(name, number)
    tmp = target.with_suffix(".tmp")
    # The gzip header carries a time and a file name: both fixed, or equal exports
    # a second apart would differ in one byte.
    with (
        tmp.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as packed,
        tarfile.open(fileobj=packed, mode="w") as tar,
    ):
        for path in sorted(files):
            info = tarfile.TarInfo(f"{name}-v{number}/{path}")
            info.size, info.mtime, info.mode = len(files[path]), 0, 0o644
            tar.addfile(info, io.BytesIO(files[path]))
    tmp.replace(target)
    return target


def read_bundle(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest and files of a bundle, every file's hash checked against the manifest."""
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            for member in tar.getmembers():
                if not member.isfile():
                    raise ValidationError(f"bundle {path} holds a non-file entry {member.name!r}")
                extracted = tar.extractfile(member)
                if extracted is not None:
                    files[member.name.split("/", 1)[-1]] = extracted.read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise IntegrityError(f"bundle {path} cannot be read: {error}") from error
    if "manifest.json" not in files:
        raise ValidationError(f"{path} is not a modelyard bundle: it has no manifest.json")
    manifest: dict[str, Any] = json.loads(files["manifest.json"])
    for name, digest in manifest["files"].items():
        actual = hashlib.sha256(files.get(name, b"")).hexdigest()
        if actual != digest:
            raise IntegrityError(f"file {name!r} in bundle {path} does not match its manifest hash")
    return manifest, files


def load_bundle(path: Path, *, trusted: bool = False, intra_op_threads: int = 1) -> LoadedModel:
    """Load a model straight from a bundle file, without any registry."""
    manifest, files = read_bundle(path)
    flavour = manifest["flavour"]
    signature = Signature.from_dict(json.loads(files["signature.json"]))
    predictor = FLAVOURS[flavour].load(
        files[_MODEL_FILES[flavour]],
        signature,
        LoadOptions(trusted=trusted, intra_op_threads=intra_op_threads),
    )
    return LoadedModel(manifest["model"], manifest["version"], predictor)
