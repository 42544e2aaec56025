"""A store folder's file names and its writer lock (one writing process, any readers)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from stores.errors import StoreError, StoreLocked

DB_NAME, INDEX_NAME, LOCK_NAME = "memory.sqlite", "keys.faiss", "writer.lock"
VALUES_NAME = "values.bin"


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
    """The folder's writer lock, as an open descriptor, with this process's pid written in
    it; StoreLocked naming the holder's pid if another process holds it."""
    lock = folder / LOCK_NAME
    try:
        fd = try_lock(lock)
    except OSError as exc:
        raise StoreError(f"cannot open the writer lock {lock}: {exc.strerror}") from None
    if fd is None:
        holder = lock.read_text(errors="replace").strip() or "unknown"
        raise StoreLocked(
            f"{folder} is in use by pid {holder}, which has it open for writing: wait for it "
            "to finish (the memory commands that only read work beside it; from Python, open "
            "it with readonly=True)"
        )
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def release_lock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
