"""A store folder's file names and its writer lock (one writing process, any readers)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from stores.errors import StoreError, StoreLocked

DB_NAME, INDEX_NAME, LOCK_NAME = "memory.sqlite", "keys.faiss", "writer.lock"


def try_lock(path: Path) -> int | None:
    """An exclusive flock on the file at ``path`` (created), as an open descriptor, or None
    while another process holds it. Never opened through a planted symlink; OSError if the
    file cannot be opened."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def take_writer_lock(folder: Path) -> int:
    """The folder's writer lock, as an open descriptor; StoreLocked if another process
    holds it."""
    lock = folder / LOCK_NAME
    try:
        fd = try_lock(lock)
    except OSError as exc:
        raise StoreError(f"cannot open the writer lock {lock}: {exc.strerror}") from None
    if fd is None:
        raise StoreLocked(
            f"{folder} is open for writing by another process; open it with readonly=True"
        )
    return fd


def release_lock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
