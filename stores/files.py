"""Files written so that a kill, a full disk or a planted symlink cannot damage anything.

Every temporary file is created exclusively (``mkstemp``: ``O_CREAT | O_EXCL``, a fresh random
name in the destination's own folder), so a symlink planted at a predictable temp name is
never written through; the finished file is renamed over the destination, which replaces a
link there rather than following it. A write that fails removes its temporary file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def temp_file(dest: Path) -> Iterator[tuple[BinaryIO, Path]]:
    """An exclusive, fresh temporary file beside ``dest``; removed if the block fails."""
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide the file from other readers
        with os.fdopen(fd, "wb") as f:
            yield f, tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def replaced(dest: str | os.PathLike, *, durable: bool = True) -> Iterator[BinaryIO]:
    """A file to write that replaces ``dest`` whole when the block ends (readers see the old
    file or the new one); nothing changes if the block fails."""
    dest = Path(dest)
    with temp_file(dest) as (f, tmp):
        yield f
        f.flush()
        if durable:
            os.fsync(f.fileno())
    try:
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(dest: str | os.PathLike, data: bytes | str, *, durable: bool = True) -> None:
    """Replace ``dest`` with ``data`` whole: readers see the old file or the new one."""
    with replaced(dest, durable=durable) as f:
        f.write(data.encode() if isinstance(data, str) else data)


def fsync_path(path: str | os.PathLike) -> None:
    """fsync a file or a folder by path (a folder's fsync makes its renames durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_disk_full(exc: BaseException) -> bool:
    """True for 'no space left' (or quota) from the OS or from SQLite."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc).lower()
    return "database or disk is full" in text or "no space left" in text
