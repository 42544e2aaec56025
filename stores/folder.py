"""A store folder's file names and its writer lock (one writing process, any readers)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from stores.errors import StoreError, StoreLocked

DB_NAME, INDEX_NAME, LOCK_NAME = "memory.sqlite", "keys.faiss", "writer.lock"


def take_writer_lock(folder: Path) -> int:
    """The folder's writer lock (flock), as an open descriptor; StoreLocked if another
    process holds it. Never opened through a planted symlink."""
    lock = folder / LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot open the writer lock {lock}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreLocked(
            f"{folder} is open for writing by another process; open it with readonly=True"
        ) from None
    return fd


def release_lock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
