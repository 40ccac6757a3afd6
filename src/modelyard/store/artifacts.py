"""Content-addressed artifact store: blobs named by sha256, written atomically, verified on read.

Keys are digests (64 lowercase hex characters) and nothing else, so no key can
name a path; the only user-supplied names (run artifact names, bundle file
names) go through ``safe_relative_name``. A local store also refuses to follow
a symlink planted inside its root to somewhere outside it.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol
from urllib.parse import unquote

from modelyard.errors import (
    ArtifactNotFoundError,
    ConfigurationError,
    IntegrityError,
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
        hasher = hashlib.sha256()
        size = 0
        with open(path, "rb") as src:
            while chunk := src.read(_CHUNK):
                hasher.update(chunk)
                size += len(chunk)
        digest = hasher.hexdigest()
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


class FsspecArtifactStore:
    """The same layout on any fsspec filesystem (``s3://bucket/prefix``, ``memory://x``, ...)."""

    def __init__(self, url: str) -> None:
        try:
            import fsspec
        except ModuleNotFoundError as error:
            raise ConfigurationError(
                f"artifacts_url {url!r} needs fsspec: pip install 'modelyard[fsspec]'"
            ) from error
        self.fs, root = fsspec.core.url_to_fs(url)
        self.root = root.rstrip("/")

    def _key(self, digest: str) -> str:
        check_digest(digest)
        return f"{self.root}/sha256/{digest[:2]}/{digest}"

    def put_bytes(self, data: bytes) -> ArtifactRef:
        digest = hashlib.sha256(data).hexdigest()
        key = self._key(digest)
        if not self.fs.exists(key):
            tmp = f"{self.root}/tmp/{uuid.uuid4().hex}"
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, key)
        return ArtifactRef(digest, len(data))

    def put_file(self, path: Path) -> ArtifactRef:
        return self.put_bytes(Path(path).read_bytes())

    def get_bytes(self, digest: str, *, name: str | None = None) -> bytes:
        key = self._key(digest)
        if not self.fs.exists(key):
            label = f"{name!r} ({digest})" if name else digest
            raise ArtifactNotFoundError(f"artifact {label} is not in the store at {self.root}")
        return _verify(bytes(self.fs.cat_file(key)), digest, name)

    def exists(self, digest: str) -> bool:
        return bool(self.fs.exists(self._key(digest)))


def open_artifact_store(url: str) -> ArtifactStore:
    """A local directory for plain paths and ``file://``; fsspec for any other scheme."""
    if "://" not in url:
        return LocalArtifactStore(Path(url))
    if url.startswith("file://"):
        return LocalArtifactStore(Path(url[len("file://") :]))
    return FsspecArtifactStore(url)
