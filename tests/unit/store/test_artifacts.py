import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelyard.errors import (
    ArtifactNotFoundError,
    ConfigurationError,
    IntegrityError,
    UnsafePathError,
)
from modelyard.store import (
    CachedArtifactStore,
    FsspecArtifactStore,
    LocalArtifactStore,
    open_artifact_store,
    safe_relative_name,
)


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "artifacts")


def test_blobs_are_named_by_their_sha256_and_read_back(store: LocalArtifactStore) -> None:
    ref = store.put_bytes(b"model bytes")
    assert ref.digest == hashlib.sha256(b"model bytes").hexdigest()
    assert ref.size == len(b"model bytes")
    assert store.get_bytes(ref.digest) == b"model bytes"
    assert store.put_bytes(b"model bytes") == ref


def test_files_are_stored_by_content(store: LocalArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(os.urandom(3 * (1 << 20) + 5))
    ref = store.put_file(source)
    assert store.get_bytes(ref.digest) == source.read_bytes()
    assert not list((store.root / "tmp").iterdir()), "temporary files are renamed into place"


def test_a_tampered_blob_is_refused_naming_the_artifact(store: LocalArtifactStore) -> None:
    ref = store.put_bytes(b"original")
    blob = store.root / "sha256" / ref.digest[:2] / ref.digest
    blob.write_bytes(b"changed!")
    with pytest.raises(IntegrityError, match=rf"'fraud/1' \({ref.digest}\) is corrupt"):
        store.get_bytes(ref.digest, name="fraud/1")


def test_a_truncated_blob_is_refused(store: LocalArtifactStore) -> None:
    ref = store.put_bytes(b"x" * 1000)
    blob = store.root / "sha256" / ref.digest[:2] / ref.digest
    blob.write_bytes(b"x" * 10)
    with pytest.raises(IntegrityError, match="modified or truncated"):
        store.get_bytes(ref.digest)


def test_storing_again_repairs_a_damaged_copy(store: LocalArtifactStore) -> None:
    ref = store.put_bytes(b"good")
    (store.root / "sha256" / ref.digest[:2] / ref.digest).write_bytes(b"bad")
    store.put_bytes(b"good")
    assert store.get_bytes(ref.digest) == b"good"


def test_missing_blob(store: LocalArtifactStore) -> None:
    with pytest.raises(ArtifactNotFoundError):
        store.get_bytes("0" * 64)


@pytest.mark.parametrize(
    "key",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "%2e%2e/%2e%2e/etc/passwd",
        "a" * 63,
        "A" * 64,
        "",
        "..",
        "x/../y",
    ],
)
def test_keys_that_are_not_digests_never_reach_the_filesystem(
    store: LocalArtifactStore, key: str
) -> None:
    with pytest.raises(UnsafePathError, match="sha256 hex digest"):
        store.get_bytes(key)


def test_a_symlink_planted_in_the_store_is_not_followed_outside(
    store: LocalArtifactStore, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"outside the store")
    digest = hashlib.sha256(b"outside the store").hexdigest()
    link = store.root / "sha256" / digest[:2] / digest
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(secret)
    with pytest.raises(UnsafePathError, match="outside the store root"):
        store.get_bytes(digest)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("../model.onnx", "climbs out"),
        ("a/../../b", "climbs out"),
        ("%2e%2e/model.onnx", "climbs out"),
        ("%252e%252e/x", "climbs out"),
        ("/etc/passwd", "is absolute"),
        ("%2Fetc%2Fpasswd", "is absolute"),
        ("C:/Windows", "is absolute"),
        ("a\\..\\b", "backslash"),
        ("a\x00b", "NUL"),
        ("", "is empty"),
    ],
)
def test_unsafe_artifact_names_are_refused(name: str, problem: str) -> None:
    with pytest.raises(UnsafePathError, match=problem):
        safe_relative_name(name)


@given(st.text(min_size=1, max_size=40))
def test_any_accepted_name_stays_inside_a_root(name: str) -> None:
    try:
        cleaned = safe_relative_name(name)
    except UnsafePathError:
        return
    root = Path("/srv/root")
    assert (root / cleaned).resolve().is_relative_to(root)


def test_fsspec_store_has_the_same_contract() -> None:
    pytest.importorskip("fsspec")
    store = FsspecArtifactStore("memory://modelyard-test")
    ref = store.put_bytes(b"abc")
    assert store.exists(ref.digest)
    assert store.get_bytes(ref.digest) == b"abc"
    store.fs.pipe_file(f"{store.root}/sha256/{ref.digest[:2]}/{ref.digest}", b"abd")
    with pytest.raises(IntegrityError):
        store.get_bytes(ref.digest)


def test_a_filesystem_without_atomic_writes_gets_a_temporary_file_and_a_rename(
    tmp_path: Path,
) -> None:
    pytest.importorskip("fsspec")
    store = FsspecArtifactStore(f"file://{tmp_path / 'shared'}")
    ref = store.put_bytes(b"abc")
    assert store.get_bytes(ref.digest) == b"abc"
    assert (tmp_path / "shared" / "sha256" / ref.digest[:2] / ref.digest).read_bytes() == b"abc"
    assert not list((tmp_path / "shared" / "tmp").iterdir()), "renamed into place"


def _remote_key(store: FsspecArtifactStore, digest: str) -> str:
    return f"{store.root}/sha256/{digest[:2]}/{digest}"


def _cached(tmp_path: Path) -> CachedArtifactStore:
    pytest.importorskip("fsspec")
    store = open_artifact_store(f"memory://modelyard-{tmp_path.name}", cache_dir=tmp_path / "cache")
    assert isinstance(store, CachedArtifactStore)
    return store


def test_a_remote_read_is_kept_in_the_cache_and_used_next_time(tmp_path: Path) -> None:
    store = _cached(tmp_path)
    ref = store.put_bytes(b"weights")
    assert not store.cache.exists(ref.digest), "writes go to the remote store only"

    assert store.get_bytes(ref.digest) == b"weights"
    assert store.cache.get_bytes(ref.digest) == b"weights"

    remote = store.remote
    assert isinstance(remote, FsspecArtifactStore)
    remote.fs.rm_file(_remote_key(remote, ref.digest))
    assert store.get_bytes(ref.digest) == b"weights", "read from the cache alone"
    assert store.exists(ref.digest)


def test_a_damaged_cached_copy_is_fetched_again(tmp_path: Path) -> None:
    store = _cached(tmp_path)
    ref = store.put_bytes(b"weights")
    store.get_bytes(ref.digest)
    cached = store.cache.root / "sha256" / ref.digest[:2] / ref.digest
    cached.write_bytes(b"tampered")

    assert store.get_bytes(ref.digest) == b"weights"
    assert cached.read_bytes() == b"weights"


def test_a_damaged_remote_copy_is_refused_and_not_cached(tmp_path: Path) -> None:
    store = _cached(tmp_path)
    ref = store.put_bytes(b"weights")
    remote = store.remote
    assert isinstance(remote, FsspecArtifactStore)
    remote.fs.pipe_file(_remote_key(remote, ref.digest), b"tampered")

    with pytest.raises(IntegrityError, match=rf"'fraud/3' \({ref.digest}\) is corrupt"):
        store.get_bytes(ref.digest, name="fraud/3")
    assert not store.cache.exists(ref.digest)


def test_a_local_store_has_no_cache(tmp_path: Path) -> None:
    store = open_artifact_store(str(tmp_path / "artifacts"), cache_dir=tmp_path / "cache")
    assert isinstance(store, LocalArtifactStore)
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("memory://yard/../elsewhere", "'..' segment"),
        ("nosuchscheme://bucket/yard", "nosuchscheme"),
    ],
)
def test_an_unusable_artifacts_url_is_a_configuration_error(url: str, problem: str) -> None:
    pytest.importorskip("fsspec")
    with pytest.raises(ConfigurationError, match=problem):
        open_artifact_store(url)


def test_a_cached_read_leaves_the_remote_filesystem_unopened(tmp_path: Path) -> None:
    _cached(tmp_path).put_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()
    _cached(tmp_path).get_bytes(digest)

    restarted = _cached(tmp_path)  # the next start of the same node
    assert restarted.get_bytes(digest) == b"weights"
    remote = restarted.remote
    assert isinstance(remote, FsspecArtifactStore)
    assert remote._opened is None, "no client for the object store was needed"
