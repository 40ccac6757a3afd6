"""A lock on a directory, held by one live process: who owns a write-ahead log.

``flock`` on ``<directory>/lock``: the kernel drops it when its process
exits, however it exits (SIGKILL included), so a free lock means the owner is
gone. Pids would be a weaker test: they are reused, and a dead worker's pid may
belong to a new process. Deleting a locked directory races with a process
about to lock it; after taking the lock, both sides check that the lock file
on disk is still the one they locked (same inode), and try again if not.

POSIX only (``fcntl``), like the serving workers.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from modelyard.errors import ConflictError, StoreError

LOCK = "lock"
_ATTEMPTS = 50


def lock_directory(directory: Path, timeout_s: float) -> int:
    """Lock ``directory`` (created if needed) for this process; returns the lock's descriptor."""
    # A recovering process may hold a reused directory for a moment: wait for it.
    deadline = time.monotonic() + timeout_s
    while True:
        fd = try_lock_directory(Path(directory), create=True)
        if fd is not None:
            return fd
        if time.monotonic() >= deadline:
            raise ConflictError(
                f"the write-ahead log {directory} is in use by another live process; "
                "give each process its own worker id"
            )
        time.sleep(0.02)


def try_lock_directory(directory: Path, *, create: bool) -> int | None:
    """The directory's lock, or None when a live process holds it (or it is gone)."""
    path = directory / LOCK
    for _ in range(_ATTEMPTS):
        if create:
            directory.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
        except FileNotFoundError:
            if create:
                continue  # removed by a recovering process between mkdir and open
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            return fd
        os.close(fd)  # we locked a file that was just deleted with its directory
        if not create:
            return None
    raise StoreError(f"could not lock the write-ahead log {directory}")
