"""Where the leader pushes a deployment's manifests: the ``PlatformSink`` port, and a folder.

A sink takes the documents a target's renderer made for one deployment and applies
them, all or as many as it can, raising ``PlatformError`` (naming the object and what
the platform said) when it cannot. Pushing again what was pushed changes nothing, so the
caller may retry freely (``platforms.sync``).

Two adapters, chosen by ``runner.platform_sink`` (``open_sink``):

* ``DirectorySink`` (a path, or ``file://``): one folder per deployment, one file per
  object, as ``modelyard k8s render --out`` writes them, for a GitOps tool (Argo CD,
  Flux) to apply from a repository. Each file is replaced atomically (written beside,
  flushed, renamed over), so a reader never sees half a manifest; a file whose text is
  unchanged is not rewritten, so a commit shows only what a step changed.
* ``KubernetesApiSink`` (``kubernetes`` or ``kubernetes:CONTEXT``,
  ``platforms.kubernetes_api``): server-side apply against the cluster's API server.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from modelyard.errors import ConfigurationError, PlatformError
from modelyard.platforms.documents import manifest_file_name, to_yaml

__all__ = ["DirectorySink", "PlatformSink", "open_sink"]

_OURS = re.compile(r"^[0-9]{2}-[a-z]+-[a-z0-9.-]+\.yaml$")  # manifest_file_name's form


class PlatformSink(Protocol):
    """Applies one deployment's manifests to a platform."""

    @property
    def where(self) -> str:
        """Where pushes go, for events and log lines (never holds a credential)."""
        ...

    def push(self, deployment: str, documents: Sequence[dict[str, Any]]) -> None:
        """Apply ``documents`` (idempotent); ``PlatformError`` when the platform refuses."""
        ...


class DirectorySink:
    """Manifests written to ``root/<deployment>/``, each file replaced atomically."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def where(self) -> str:
        return str(self.root)

    def push(self, deployment: str, documents: Sequence[dict[str, Any]]) -> None:
        folder = self.root / deployment
        wanted = {
            manifest_file_name(index, document): to_yaml([document])
            for index, document in enumerate(documents, start=1)
        }
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for name, text in wanted.items():
                _replace(folder / name, text)
            for stale in folder.iterdir():  # an object no longer rendered (a renamed one)
                if stale.name not in wanted and _OURS.match(stale.name):
                    stale.unlink()
        except OSError as error:
            raise PlatformError(
                f"cannot write the manifests of {deployment!r} to {folder}: {error}"
            ) from error


def _replace(path: Path, text: str) -> None:
    """``path`` holds ``text`` afterwards; a reader sees the old file or the new one."""
    data = text.encode("utf-8")
    try:
        if path.read_bytes() == data:
            return
    except FileNotFoundError:
        pass
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def open_sink(url: str) -> PlatformSink:
    """The sink ``url`` names: ``kubernetes`` / ``kubernetes:CONTEXT``, else a folder."""
    if url == "kubernetes" or url.startswith("kubernetes:"):
        # The kubernetes client is imported only for this sink (the `k8s` extra).
        from modelyard.platforms.kubernetes_api import KubernetesApiSink

        context = url.partition(":")[2] or None
        return KubernetesApiSink.from_kubeconfig(context)
    if "://" in url and not url.startswith("file://"):
        raise ConfigurationError(
            f"setting 'runner.platform_sink' must be a folder, file://FOLDER, kubernetes or "
            f"kubernetes:CONTEXT, got {url!r}"
        )
    return DirectorySink(Path(url.removeprefix("file://")).expanduser())
