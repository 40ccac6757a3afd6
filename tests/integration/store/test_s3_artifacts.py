"""The artifact store on S3 (through fsspec and s3fs), against a local S3-compatible
server: the same contract as on a local disk, and a registry whose versions live there."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from modelyard.config import load_settings
from modelyard.errors import (
    ArtifactNotFoundError,
    ConfigurationError,
    IntegrityError,
    StoreError,
    UnsafePathError,
)
from modelyard.registry.loading import load_model
from modelyard.store import FsspecArtifactStore, open_artifact_store
from modelyard.yard import Yard

pytest.importorskip("s3fs")


def _objects(store: FsspecArtifactStore, bucket: str) -> list[str]:
    """Every key in the bucket, listed afresh (no cached listing)."""
    store.fs.invalidate_cache()
    return sorted(store.fs.find(bucket))


def test_blobs_round_trip_under_the_prefix_with_no_temporary_objects(
    s3_environ: Any, tmp_path: Path
) -> None:
    bucket = s3_environ.new_bucket()
    store = open_artifact_store(f"s3://{bucket}/yard")
    assert isinstance(store, FsspecArtifactStore)
    source = tmp_path / "weights.bin"
    source.write_bytes(os.urandom((2 << 20) + 7))

    small = store.put_bytes(b"model bytes")
    large = store.put_file(source)

    assert small.digest == hashlib.sha256(b"model bytes").hexdigest()
    assert large.size == source.stat().st_size
    assert store.get_bytes(small.digest) == b"model bytes"
    assert store.get_bytes(large.digest) == source.read_bytes()
    assert store.exists(large.digest)
    assert not store.exists("0" * 64)
    # one PUT per blob, straight to its key: nothing else is ever written
    assert _objects(store, bucket) == sorted(
        f"{bucket}/yard/sha256/{ref.digest[:2]}/{ref.digest}" for ref in (small, large)
    )
    assert store.put_bytes(b"model bytes") == small


def test_a_tampered_or_truncated_object_is_refused_naming_it(s3_environ: Any) -> None:
    store = open_artifact_store(f"s3://{s3_environ.new_bucket()}/yard")
    assert isinstance(store, FsspecArtifactStore)
    ref = store.put_bytes(b"x" * 1000)
    key = f"{store.root}/sha256/{ref.digest[:2]}/{ref.digest}"

    store.fs.pipe_file(key, b"y" * 1000)
    with pytest.raises(IntegrityError, match=rf"'fraud/1' \({ref.digest}\) is corrupt"):
        store.get_bytes(ref.digest, name="fraud/1")
    store.fs.pipe_file(key, b"x" * 10)
    with pytest.raises(IntegrityError, match="modified or truncated"):
        store.get_bytes(ref.digest)

    store.put_bytes(b"x" * 1000)  # storing the good bytes again repairs the object
    assert store.get_bytes(ref.digest) == b"x" * 1000


def test_a_reader_sees_a_blob_whole_or_not_at_all(s3_environ: Any, tmp_path: Path) -> None:
    store = open_artifact_store(f"s3://{s3_environ.new_bucket()}/yard")
    source = tmp_path / "model.bin"
    source.write_bytes(os.urandom(8 << 20))
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    seen: list[str] = []
    done = threading.Event()

    def read_while_written() -> None:
        while not done.is_set():
            try:
                store.get_bytes(digest)  # raises IntegrityError on a partial object
                seen.append("whole")
            except ArtifactNotFoundError:
                seen.append("absent")

    reader = threading.Thread(target=read_while_written)
    reader.start()
    try:
        store.put_file(source)
    finally:
        done.set()
        reader.join()
    assert set(seen) <= {"absent", "whole"}
    assert store.get_bytes(digest) == source.read_bytes()


@pytest.mark.parametrize("key", ["../../other/" + "a" * 64, "/etc/passwd", "A" * 64, ""])
def test_keys_that_are_not_digests_never_reach_the_bucket(s3_environ: Any, key: str) -> None:
    bucket = s3_environ.new_bucket()
    store = open_artifact_store(f"s3://{bucket}/yard")
    assert isinstance(store, FsspecArtifactStore)
    with pytest.raises(UnsafePathError, match="sha256 hex digest"):
        store.get_bytes(key)
    with pytest.raises(UnsafePathError, match="sha256 hex digest"):
        store.exists(key)
    assert _objects(store, bucket) == []


def test_a_missing_blob_names_the_store(s3_environ: Any) -> None:
    url = f"s3://{s3_environ.new_bucket()}/yard"
    with pytest.raises(
        ArtifactNotFoundError, match=rf"'fraud/2' \(0+\) is not in the store at {url}"
    ):
        open_artifact_store(url).get_bytes("0" * 64, name="fraud/2")


def test_a_store_that_does_not_answer_is_a_store_error_naming_it(
    s3_environ: Any, unused_port: Any
) -> None:
    url = "s3://nowhere/yard"
    store = FsspecArtifactStore(
        url,
        endpoint_url=f"http://127.0.0.1:{unused_port()}",
        config_kwargs={"retries": {"max_attempts": 1}, "connect_timeout": 2},
        skip_instance_cache=True,
    )
    with pytest.raises(
        StoreError, match=r"could not read artifact 'm/1' \(0+\) at s3://nowhere/yard: "
    ):
        store.get_bytes("0" * 64, name="m/1")


def test_a_missing_bucket_is_a_store_error_on_write(s3_environ: Any) -> None:
    store = open_artifact_store("s3://modelyard-no-such-bucket/yard")
    with pytest.raises(
        StoreError, match="could not write artifact .* at s3://modelyard-no-such-bucket/yard"
    ):
        store.put_bytes(b"abc")


def test_a_prefix_that_climbs_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="'..' segment"):
        open_artifact_store("s3://bucket/yard/../elsewhere")


def test_a_registry_on_s3_registers_and_a_fresh_home_loads(
    s3_environ: Any,
    tmp_path: Path,
    forest: RandomForestClassifier,
    classification_data: tuple[np.ndarray, np.ndarray],
) -> None:
    features, _ = classification_data
    url = f"s3://{s3_environ.new_bucket()}/yard"
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    registering = load_settings(
        home=tmp_path / "laptop", database_url=database, artifacts_url=url, environ={}
    )
    with Yard(registering) as yard:
        version = yard.register_model("fraud", forest, features)
    assert not (tmp_path / "laptop" / "artifacts").exists()

    elsewhere = load_settings(
        home=tmp_path / "node", database_url=database, artifacts_url=url, environ={}
    )
    loaded = load_model("fraud/1", settings=elsewhere)
    np.testing.assert_array_equal(
        loaded.predict(features[:5])["label"], forest.predict(features[:5])
    )
    cached = tmp_path / "node" / "cache" / "artifacts" / "sha256"
    assert (cached / version.artifact_digest[:2] / version.artifact_digest).is_file()
