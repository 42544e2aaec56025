"""Values in a file read by offset, so a replay draw's reads are issued together.

At ten million memories the payloads (7.8 GB of MNIST) no longer stay in the page cache
beside the index, and a draw of 64 memories is 64 cold reads. SQLite makes them one B-tree
descent after another (sample(64) took 6 ms at 10M). Here a value sits at an offset computed
from its id: every read of a draw is announced to the kernel at once (``WILLNEED``) before
the first is waited for, and after an open the whole file is read into the page cache on a
thread where it fits.

The file is a cache, never the truth. A slot holds its memory's id and an XXH3 check of
(store, id, value) before the value, and is written only after the commit of its value (a
write that rolls back gives its ids again). So a slot that passes its check holds that id's
committed value, which never changes; one that fails (never written, taken by another id,
torn by a crash, a file of another store) is read from the database instead, and the writer
writes it back. The file needs no fsync, no recovery and no header beyond whose it is.

A memory's slot is its id where the store has no capacity (ids only grow: each slot is
written once), and its id modulo four times the capacity where it has one, so the file stays
bounded while ids grow for ever (an id that lands on a live memory's slot costs that memory
one read from the database, after which it is written back).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xxhash

HEADER_BYTES = 4096
SLOTS_PER_CAPACITY = 4
MAX_IDS = 4096  # larger reads (an export, a bulk fetch) go to the database in one statement
READ_AHEAD_CHUNK = 8 << 20
_FORMAT = "lifelong-values/1"


def slot_count(capacity: int | None) -> int | None:
    """Slots in the file: None (one per id) without a capacity."""
    return None if capacity is None else SLOTS_PER_CAPACITY * int(capacity)


class ValueFile:
    """The store's values by offset; ``get`` says which it could vouch for."""

    def __init__(self, fd: int, *, seed: int, nbytes: int, slots: int | None) -> None:
        self._fd = fd
        self._seed = seed
        self.nbytes = nbytes
        self.slots = slots
        self.record_bytes = 16 + nbytes  # id (int64), check (uint64), value
        self.hits = self.misses = 0  # reads served, and sent to the database
        self.read_ahead_s: float | None = None  # how long reading the file in took, once done
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        store_id: str,
        nbytes: int,
        capacity: int | None,
        writable: bool,
        next_id: int = 0,
    ) -> ValueFile | None:
        """The file at ``path``; a writer creates it, or starts it again when it belongs to
        another store or layout, and drops slots of ids not committed yet (``next_id`` on:
        a power cut can lose commits whose slots the disk kept). None for a reader where
        there is no usable one."""
        header = {"format": _FORMAT, "store": store_id, "value_bytes": nbytes}
        header["slots"] = slot_count(capacity)
        flags = (os.O_RDWR | os.O_CREAT) if writable else os.O_RDONLY
        try:
            fd = os.open(path, flags | os.O_NOFOLLOW, 0o644)
        except OSError:
            return None  # a reader without the file, or a folder it cannot write
        if _read_header(fd) != header:
            if not writable:
                os.close(fd)
                return None
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(header).encode().ljust(HEADER_BYTES, b" "), 0)
        if hasattr(os, "posix_fadvise"):  # no readahead: a draw's neighbours are not wanted
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        file = cls(fd, seed=int(store_id[:16], 16), nbytes=nbytes, slots=header["slots"])
        end = int(file._offsets(np.array([next_id]))[0])
        if writable and file.slots is None and os.fstat(fd).st_size > end:
            os.ftruncate(fd, end)
            os.fsync(fd)  # durable before those ids are given again
        return file

    def _offsets(self, ids: np.ndarray) -> np.ndarray:
        slots = ids if self.slots is None else ids % self.slots
        return HEADER_BYTES + slots * self.record_bytes

    def _checks(self, ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """XXH3 of each row seeded by store and id: a slot proves whose value it holds."""
        seed = self._seed
        return np.array(
            [
                xxhash.xxh3_64_intdigest(row, seed=seed ^ i)
                for i, row in zip(ids.tolist(), rows, strict=True)
            ],
            np.uint64,
        )

    def put(self, ids: np.ndarray, values: np.ndarray) -> None:
        """Write ``values`` (one row of bytes each) into the slots of ``ids``; slots next to
        each other go in one write."""
        if not len(ids):
            return
        rows = np.ascontiguousarray(values).view(np.uint8).reshape(len(ids), self.nbytes)
        block = np.empty((len(ids), self.record_bytes), np.uint8)
        block[:, :8] = ids.astype("<i8").view(np.uint8).reshape(-1, 8)
        block[:, 8:16] = self._checks(ids, rows).view(np.uint8).reshape(-1, 8)
        block[:, 16:] = rows
        offsets = self._offsets(ids)
        breaks = np.flatnonzero(np.diff(offsets) != self.record_bytes) + 1
        for run in np.split(np.arange(len(ids)), breaks):
            os.pwrite(self._fd, block[run].tobytes(), int(offsets[run[0]]))

    def get(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(values as rows of bytes, which rows the file vouched for) for ``ids``."""
        offsets = self._offsets(ids).tolist()
        size = self.record_bytes
        if len(offsets) > 1 and hasattr(os, "posix_fadvise"):
            for off in offsets:  # all reads queued before any is waited for
                os.posix_fadvise(self._fd, off, size, os.POSIX_FADV_WILLNEED)
        raw = b"".join(os.pread(self._fd, size, off).ljust(size, b"\0") for off in offsets)
        block = np.frombuffer(raw, np.uint8).reshape(len(ids), size)
        values = block[:, 16:]
        found = block[:, :8].copy().view("<i8").reshape(-1) == ids
        if found.any():
            stored = block[found, 8:16].copy().view("<u8").reshape(-1)
            found[found] = stored == self._checks(ids[found], values[found])
        hits = int(found.sum())
        self.hits += hits
        self.misses += len(ids) - hits
        return values, found

    def forget(self, ids: np.ndarray) -> None:
        """Zero the slots of deleted memories, where each slot is theirs alone (no capacity;
        with one, a later id takes the slot over)."""
        if self.slots is not None or not len(ids):
            return
        offsets = self._offsets(np.sort(ids))
        breaks = np.flatnonzero(np.diff(offsets) != self.record_bytes) + 1
        end = os.fstat(self._fd).st_size
        for run in np.split(offsets, breaks):
            start = int(run[0])
            if start < end:
                length = min(len(run) * self.record_bytes, end - start)
                os.pwrite(self._fd, bytes(length), start)

    def read_ahead(self, after: Callable[[], bool] = lambda: True) -> None:
        """Read the whole file into the page cache on a thread, once ``after()`` says so
        (polled; at most a minute), where it fits in three quarters of the memory then
        available: a draw then finds its values in RAM (0.15 ms for 64 at 2M) instead of
        on the disk (0.7 ms for 64 reads side by side on this machine's disk). The cache is
        the kernel's to drop again; nothing stays in this process."""
        self._reader = threading.Thread(
            target=self._read_in, args=(after,), name="values read ahead", daemon=True
        )
        self._reader.start()

    def _read_in(self, after: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 60
        while not after() and time.monotonic() < deadline:
            if self._stop.wait(0.05):
                return
        size = os.fstat(self._fd).st_size
        if size > available_memory() * 3 // 4:
            return
        # plain reads into one buffer: the kernel's WILLNEED advice over a whole file was
        # heeded for 192 MB of 1.5 GB here; reads fill the cache at 1.6 GB/s, 0.25 s of CPU
        start, buffer = time.perf_counter(), bytearray(READ_AHEAD_CHUNK)
        for offset in range(0, size, READ_AHEAD_CHUNK):
            if self._stop.is_set():
                return
            try:
                os.preadv(self._fd, [buffer], offset)
            except OSError:  # a disk error: draws still read (and check) slot by slot
                return
        self.read_ahead_s = time.perf_counter() - start

    def wait_read_ahead(self) -> None:
        """Until the open's read into the page cache is done (or was not wanted)."""
        if self._reader is not None:
            self._reader.join()

    def close(self) -> None:
        self._stop.set()
        if self._reader is not None:
            self._reader.join()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def available_memory() -> int:
    """Bytes the kernel says it could give without swapping (0 where it does not say)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _read_header(fd: int) -> dict | None:
    try:
        return json.loads(os.pread(fd, HEADER_BYTES, 0).decode())
    except (UnicodeDecodeError, ValueError):
        return None
