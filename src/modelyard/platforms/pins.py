"""The exact versions of modelyard's runtime dependencies installed here, for an image.

Walks modelyard's requirements (with the extras a cluster needs: PostgreSQL for the
shared database, fsspec and s3fs for an object store) and theirs, transitively, through
``importlib.metadata``, evaluating each requirement's environment markers for the
image (Linux, this Python), and pins each distribution found at its installed
version: the image then runs what was tested here. A requirement not installed here
is left out and reported, rather than pinned to a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

__all__ = ["CLUSTER_EXTRAS", "Pins", "installed_pins"]

CLUSTER_EXTRAS = ("postgres", "fsspec", "s3")


@dataclass(frozen=True)
class Pins:
    """``name==version`` lines, sorted, and the requirements not installed here."""

    lines: tuple[str, ...]
    missing: tuple[str, ...]


def installed_pins(root: str = "modelyard", extras: tuple[str, ...] = CLUSTER_EXTRAS) -> Pins:
    """Every distribution ``root`` (with ``extras``) needs at run time, at its version here."""
    environment: dict[str, str] = {
        **{key: str(value) for key, value in default_environment().items()},
        "sys_platform": "linux",
        "platform_system": "Linux",
    }
    pinned: dict[str, str] = {}
    missing: set[str] = set()
    pending: list[tuple[str, tuple[str, ...]]] = [(root, extras)]
    seen: set[tuple[str, tuple[str, ...]]] = set()
    while pending:
        name, wanted = pending.pop()
        key = canonicalize_name(name)
        try:
            found = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.add(key)
            continue
        pinned[key] = found.version
        for text in found.requires or ():
            requirement = Requirement(text)
            marker = requirement.marker
            needed = any(
                marker is None or marker.evaluate({**environment, "extra": extra})
                for extra in ("", *wanted)
            )
            step = (canonicalize_name(requirement.name), tuple(sorted(requirement.extras)))
            if needed and step not in seen:
                seen.add(step)
                pending.append((requirement.name, step[1]))
    lines = tuple(f"{name}=={version}" for name, version in sorted(pinned.items()))
    return Pins(lines, tuple(sorted(missing)))
