"""Content-addressed artifact store: blobs named by sha256, written atomically, verified on read.

Keys are digests (64 lowercase hex characters) and nothing else, so no key can
name a path; the only user-supplied names (run artifact names, bundle file
names) go through ``safe_relative_name``. A local store also refuses to follow
a symlink planted inside its root to somewhere outside it.

Three backends, one layout (``<root>/sha256/<2 hex>/<digest>``): a local directory;
any fsspec filesystem (``s3://bucket/prefix``), where an object store's PUT makes a
blob visible whole or not at all; and a remote store read through a local cache,
which a serving node on an empty disk fills as it loads its versions.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol
from urllib.parse import unquote

from modelyard.errors import (
    ArtifactNotFoundError,
    ConfigurationError,
    IntegrityError,
    ModelyardError,
    StoreError,
    UnsafePathError,
)

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArtifactRef:
    """A stored blob: its sha256 hex digest and size in bytes."""

    digest: str
    size: int


class ArtifactStore(Protocol):
    """What every artifact backend offers; chosen by URL scheme in ``open_artifact_store``."""

    def put_bytes(self, data: bytes) -> ArtifactRef: ...

    def put_file(self, path: Path) -> ArtifactRef: ...

    def get_bytes(self, digest: str, *, name: str | None = None) -> bytes: ...

    def exists(self, digest: str) -> bool: ...


def check_digest(digest: str) -> str:
    """Return ``digest`` if it is a sha256 hex digest, else raise ``UnsafePathError``."""
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise UnsafePathError(f"artifact key must be a sha256 hex digest, got {digest!r}")
    return digest


def safe_relative_name(name: str) -> str:
    """Normalise a user-supplied artifact name, refusing anything that could leave a root.

    Refused: empty names, absolute paths, ``..`` segments (also percent-encoded,
    however many times), backslashes, drive letters and NUL bytes.
    """
    decoded = name
    for _ in range(5):  # "%252e%252e" decodes twice before it says ".."
        once = unquote(decoded)
        if once == decoded:
            break
        decoded = once
    problem = None
    if not decoded.strip():
        problem = "is empty"
    elif "\x00" in decoded:
        problem = "contains a NUL byte"
    elif "\\" in decoded:
        problem = "contains a backslash"
    elif decoded.startswith("/") or re.match(r"^[A-Za-z]:", decoded):
        problem = "is absolute"
    elif any(part == ".." for part in PurePosixPath(decoded).parts):
        problem = "climbs out with '..'"
    if problem:
        raise UnsafePathError(
            f"artifact name {name!r} {problem}; use a relative path like 'model.onnx'"
        )
    return str(PurePosixPath(decoded))


def _verify(data: bytes, digest: str, name: str | None) -> bytes:
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest:
        label = f"{name!r} ({digest})" if name else digest
        raise IntegrityError(
            f"artifact {label} is corrupt: its content hashes to {actual}; "
            "it was modified or truncated after it was stored"
        )
    return data


class LocalArtifactStore:
    """Blobs under ``root/sha256/<2 hex>/<digest>``; writes go through a temp file and a rename."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self._blobs = self.root / "sha256"
        self._tmp = self.root / "tmp"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(parents=True, exist_ok=True)

    def _path(self, digest: str) -> Path:
        check_digest(digest)
        return self._blobs / digest[:2] / digest

    def _inside_root(self, path: Path) -> Path:
        real = path.resolve()
        if not real.is_relative_to(self.root):
            raise UnsafePathError(
                f"artifact path {path} resolves outside the store root {self.root}"
            )
        return real

    def put_bytes(self, data: bytes) -> ArtifactRef:
        digest = hashlib.sha256(data).hexdigest()
        target = self._path(digest)
        if not self._valid_copy_exists(target, digest):
            self._atomic_write(target, [data])
        return ArtifactRef(digest, len(data))

    def put_file(self, path: Path) -> ArtifactRef:
        digest, size = _file_digest(Path(path))
        target = self._path(digest)
        if not self._valid_copy_exists(target, digest):
            with open(path, "rb") as src:
                self._atomic_write(target, iter(lambda: src.read(_CHUNK), b""))
        return ArtifactRef(digest, size)

    def get_bytes(self, digest: str, *, name: str | None = None) -> bytes:
        path = self._path(digest)
        if not path.exists() and not path.is_symlink():
            label = f"{name!r} ({digest})" if name else digest
            raise ArtifactNotFoundError(f"artifact {label} is not in the store at {self.root}")
        return _verify(self._inside_root(path).read_bytes(), digest, name)

    def exists(self, digest: str) -> bool:
        return self._path(digest).exists()

    def _valid_copy_exists(self, target: Path, digest: str) -> bool:
        if not target.exists():
            return False
        try:
            _verify(self._inside_root(target).read_bytes(), digest, None)
        except (IntegrityError, UnsafePathError):
            return False  # a damaged copy gets replaced by the good bytes we hold
        return True

    def _atomic_write(self, target: Path, chunks: Any) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix=f"{uuid.uuid4().hex}-")
        try:
            with os.fdopen(fd, "wb") as tmp:
                for chunk in chunks:
                    tmp.write(chunk)
                tmp.flush()
                os.fsync(tmp.fileno())
            if target.is_symlink():
                target.unlink()
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise


# Filesystems whose single write makes an object visible whole or not at all: an S3
# PUT (and a multipart upload, on completion), a GCS or Azure blob upload. There a
# write goes straight to its key; a temporary object and a "rename" would be a server
# side copy and a delete, twice the traffic for no added safety.
_ATOMIC_PUT_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "az", "memory"})


def is_remote_url(url: str) -> bool:
    """Whether ``url`` names an fsspec filesystem rather than a local directory."""
    return "://" in url and not url.startswith("file://")


class FsspecArtifactStore:
    """The same layout on any fsspec filesystem (``s3://bucket/prefix``, ``memory://x``, ...).

    Credentials and endpoints come from the filesystem's own configuration (for S3:
    ``AWS_*`` environment variables, ``~/.aws``, or fsspec's ``FSSPEC_S3_*``), or from
    ``storage_options``. Errors of the filesystem (a missing bucket, refused
    credentials, an endpoint that does not answer) become ``StoreError`` naming the URL.
    """

    def __init__(self, url: str, **storage_options: Any) -> None:
        try:
            import fsspec
        except ModuleNotFoundError as error:
            raise ConfigurationError(
                f"artifacts_url {url!r} needs fsspec: pip install 'modelyard[fsspec]'"
            ) from error
        protocol, path = fsspec.core.split_protocol(url)
        _check_filesystem_installed(url, protocol or "file")
        if any(part in ("..", ".") for part in path.split("/")):
            raise ConfigurationError(
                f"artifacts_url {url!r} has a '.' or '..' segment; name the prefix plainly"
            )
        self.url = url
        self._options = storage_options
        self._opened: tuple[Any, str] | None = None
        self._opening = threading.Lock()

    @property
    def fs(self) -> Any:
        """The fsspec filesystem, opened on first use: a node whose cache holds every
        blob it reads never imports the object store's client (s3fs and botocore take
        about a second to import)."""
        return self._open()[0]

    @property
    def root(self) -> str:
        """The prefix every key starts with, as the filesystem spells paths."""
        return self._open()[1]

    def _open(self) -> tuple[Any, str]:
        with self._opening:
            if self._opened is None:
                import fsspec

                try:
                    fs, root = fsspec.core.url_to_fs(self.url, **self._options)
                except (ImportError, ValueError, TypeError) as error:
                    raise ConfigurationError(f"artifacts_url {self.url!r}: {error}") from error
                self._opened = (fs, root.rstrip("/"))
            return self._opened

    @property
    def _atomic_put(self) -> bool:
        protocols = self.fs.protocol
        if isinstance(protocols, str):
            protocols = (protocols,)
        return not _ATOMIC_PUT_PROTOCOLS.isdisjoint(protocols)

    def _key(self, digest: str) -> str:
        check_digest(digest)
        return f"{self.root}/sha256/{digest[:2]}/{digest}"

    def put_bytes(self, data: bytes) -> ArtifactRef:
        digest = hashlib.sha256(data).hexdigest()
        key = self._key(digest)
        if not self._valid_copy_exists(key, digest):
            with self._translated("write", digest):
                self._write(key, lambda target: self.fs.pipe_file(target, data))
        return ArtifactRef(digest, len(data))

    def put_file(self, path: Path) -> ArtifactRef:
        digest, size = _file_digest(Path(path))
        key = self._key(digest)
        if not self._valid_copy_exists(key, digest):
            # streamed (a multipart upload on S3), never read whole into memory
            with self._translated("write", digest):
                self._write(key, lambda target: self.fs.put_file(str(path), target))
        return ArtifactRef(digest, size)

    def get_bytes(self, digest: str, *, name: str | None = None) -> bytes:
        label = f"{name!r} ({digest})" if name else digest
        data = self._read(self._key(digest), label)
        if data is None:
            raise ArtifactNotFoundError(f"artifact {label} is not in the store at {self.url}")
        return _verify(data, digest, name)

    def exists(self, digest: str) -> bool:
        key = self._key(digest)
        with self._translated("look up", digest):
            return bool(self.fs.exists(key))

    def _read(self, key: str, label: str) -> bytes | None:
        """The object's bytes, or ``None`` where there is none (one request, no HEAD first)."""
        with self._translated("read", label):
            try:
                return bytes(self.fs.cat_file(key))
            except FileNotFoundError:
                return None

    def _write(self, key: str, write: Callable[[str], object]) -> None:
        if self._atomic_put:
            write(key)
            return
        # a hierarchical filesystem (SFTP, HDFS, SMB): a temporary file renamed into place
        self.fs.makedirs(f"{self.root}/tmp", exist_ok=True)
        self.fs.makedirs(key.rsplit("/", 1)[0], exist_ok=True)
        tmp = f"{self.root}/tmp/{uuid.uuid4().hex}"
        try:
            write(tmp)
            self.fs.mv(tmp, key)
        finally:
            if self.fs.exists(tmp):
                self.fs.rm_file(tmp)

    def _valid_copy_exists(self, key: str, digest: str) -> bool:
        data = self._read(key, digest)
        # a damaged copy gets replaced by the good bytes we hold
        return data is not None and hashlib.sha256(data).hexdigest() == digest

    @contextmanager
    def _translated(self, doing: str, label: str) -> Iterator[None]:
        """The filesystem's errors as ``StoreError`` naming the store."""
        try:
            yield
        except ModelyardError:
            raise
        except Exception as error:
            # Each fsspec backend raises its vendor's errors (botocore's
            # EndpointConnectionError is no OSError): this is their one boundary.
            raise StoreError(
                f"could not {doing} artifact {label} at {self.url}: {type(error).__name__}: {error}"
            ) from error


def _check_filesystem_installed(url: str, protocol: str) -> None:
    """Refuse, at start-up, a scheme fsspec does not know or whose package is missing,
    without importing that package (the error names the extra to install)."""
    from fsspec.registry import known_implementations, registry

    if protocol in registry:
        return
    known = known_implementations.get(protocol)
    if known is None:
        raise ConfigurationError(
            f"artifacts_url {url!r}: fsspec knows no filesystem {protocol!r} "
            "(for example s3://bucket/prefix, gs://bucket/prefix)"
        )
    package = str(known["class"]).split(".", 1)[0]
    if importlib.util.find_spec(package) is None:
        extra = "modelyard[s3]" if protocol in ("s3", "s3a") else package
        raise ConfigurationError(
            f"artifacts_url {url!r} needs the package {package!r}: pip install '{extra}'"
        )


def _file_digest(path: Path) -> tuple[str, int]:
    hasher = hashlib.sha256()
    size = 0
    with open(path, "rb") as src:
        while chunk := src.read(_CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    return hasher.hexdigest(), size


class CachedArtifactStore:
    """A remote store read through a local one: what a serving node on an empty disk
    downloads once, verifies and keeps under its home.

    Every read of the cache is verified by hash (``LocalArtifactStore.get_bytes``); a
    missing or damaged copy is fetched again from the remote store, verified there, and
    written atomically. Writes go to the remote store only: the cache holds what this
    node read, never a blob that the shared store lacks. Nothing is evicted (blobs are
    immutable; deleting the directory is always safe).
    """

    def __init__(self, remote: ArtifactStore, cache: LocalArtifactStore) -> None:
        self.remote = remote
        self.cache = cache

    def put_bytes(self, data: bytes) -> ArtifactRef:
        return self.remote.put_bytes(data)

    def put_file(self, path: Path) -> ArtifactRef:
        return self.remote.put_file(path)

    def get_bytes(self, digest: str, *, name: str | None = None) -> bytes:
        try:
            return self.cache.get_bytes(digest, name=name)
        except (ArtifactNotFoundError, IntegrityError, UnsafePathError):
            pass  # the remote copy is the truth; the cached one is refetched
        data = self.remote.get_bytes(digest, name=name)
        self.cache.put_bytes(data)
        return data

    def exists(self, digest: str) -> bool:
        return self.cache.exists(digest) or self.remote.exists(digest)


def open_artifact_store(url: str, *, cache_dir: Path | None = None) -> ArtifactStore:
    """A local directory for plain paths and ``file://``; fsspec for any other scheme.

    With ``cache_dir``, blobs read from a remote store are kept there, verified by
    hash before each use, so that a restart reads them from the local disk.
    """
    if not is_remote_url(url):
        local = url[len("file://") :] if url.startswith("file://") else url
        return LocalArtifactStore(Path(local))
    remote = FsspecArtifactStore(url)
    if cache_dir is None:
        return remote
    return CachedArtifactStore(remote, LocalArtifactStore(cache_dir))
