"""Opening a large IVF index file without reading it: FAISS maps its lists, a thread loads them.

At ten million keys the IVF lists are 5 GB, and reading, checksumming and parsing them was
most of a store's 6 s open. The lists come last in FAISS's bytes, after the index's settings,
centroids and list sizes (a few MB), and the file keeps a checksum for every block of 4 MB:
so the open checks only the blocks of that head, lets FAISS parse them (it never parses bytes
that failed a checksum), and maps the lists read-only from the file (FAISS's
``OnDiskInvertedLists``), where a search reads them in place at once. A thread then does
what the open used to do: it checks every block and the catalog, reads an owned copy of the
index (adds and removes cannot change mapped lists) and compares its ids with the catalog's.
The first change of the index waits for it (``KeyIndex.settle``); a file that fails a check
is reported then, and the store rebuilds its index from the database as an open would have.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import faiss
import numpy as np

from stores.errors import StoreError
from stores.index_file import (
    MAGIC2,
    Damaged,
    block_digests_match,
    catalog_offset,
    read_v2,
    read_v2_header,
)

MAPPED_MIN_BYTES = 256 << 20  # lists this large are mapped (about 500k 128-d IVF-Flat keys)


class IndexFileDamaged(StoreError):
    """The mapped index file failed a check its thread made after the open."""


def list_bytes(index: faiss.Index) -> int:
    """Bytes an IVF index's lists take in its file: codes and an int64 id per key (FAISS
    writes them last); 0 for any other index."""
    if not isinstance(index, faiss.IndexIVF):
        return 0
    return int(index.ntotal) * (int(index.code_size) + 8)


@contextlib.contextmanager
def without_direct_map(index: faiss.Index) -> Iterator[None]:
    """Inside, FAISS writes ``index`` with no id map (its hashtable, 160 MB at 10M, would be
    parsed on every open) while the index keeps it in RAM. A loaded copy rebuilds the map
    from its lists when a remove or a reconstruct first needs it."""
    kept = index.direct_map.type
    index.direct_map.type = faiss.DirectMap.NoMap  # the field only: the table is kept
    try:
        yield
    finally:
        index.direct_map.type = kept


def ensure_direct_map(index: faiss.Index) -> None:
    """The id -> list position hashtable removes and reconstructs by id need."""
    if index.direct_map.type != faiss.DirectMap.Hashtable:
        index.set_direct_map_type(faiss.DirectMap.Hashtable)


@dataclass
class MappedFile:
    """An index file opened mapped: the index (lists read-only from the file), its header,
    the catalog columns (a read-only memory map) and the thread loading an owned copy."""

    index: faiss.Index
    header: dict
    catalog: np.ndarray
    settling: Settling


def map_index_file(path: Path, check_ids: Callable[[faiss.Index, np.ndarray], None]):
    """The index file at ``path`` opened mapped (``MappedFile``), or None where it is not
    worth it or cannot be (small lists, no block checksums, no catalog, an old FAISS).
    ``check_ids(owned_index, catalog_ids)`` raises StoreError where they disagree; the
    loading thread calls it. Damaged or unreadable files raise StoreError as
    ``read_index_file`` does."""
    if not hasattr(faiss, "FileIOReader") or not hasattr(faiss, "IO_FLAG_MMAP"):
        return None
    try:
        f = open(path, "rb")  # noqa: SIM115 (kept open by the loading thread, or closed)
    except OSError:
        return None  # the eager reader reports it
    try:
        size = os.fstat(f.fileno()).st_size
        if f.read(len(MAGIC2)) != MAGIC2:
            f.close()
            return None
        header = read_v2_header(f, size)
        head = int(header["size"]) - int(header.get("list_bytes", 0))
        if header.get("list_bytes", 0) < MAPPED_MIN_BYTES or not header["catalog_rows"]:
            f.close()
            return None
        if not block_digests_match(f, header, head):
            raise Damaged("the index's head fails its checksum")
        same_file = f"/proc/self/fd/{f.fileno()}"
        index = _map_faiss(same_file)
        if list_bytes(index) != int(header["list_bytes"]):
            raise Damaged("its lists disagree with its header")
        rows, fields = int(header["catalog_rows"]), int(header["catalog_fields"])
        offset = catalog_offset(header)
        # aligned (``catalog_pad``, written with ``list_bytes``): numpy would copy it whole
        # on every searchsorted otherwise
        catalog = np.memmap(f, np.int64, "r", offset=offset, shape=(fields, rows))
        loader = open(same_file, "rb")  # noqa: SIM115 (its own offset, the same file)
    except Damaged as exc:
        f.close()
        raise StoreError(f"index file {path} is truncated or corrupt ({exc})") from None
    except StoreError as exc:
        f.close()
        raise StoreError(f"index file {path}: {exc}") from None
    except BaseException:
        f.close()
        raise
    f.close()  # the map and the loader's handle keep the file
    settling = Settling(path, loader, size, lambda owned: check_ids(owned, catalog[0]))
    return MappedFile(index, header, catalog, settling)


def _map_faiss(same_file: str) -> faiss.Index:
    reader = faiss.FileIOReader(same_file)
    skip = np.empty(len(MAGIC2), np.uint8)
    reader(faiss.swig_ptr(skip), 1, len(skip))
    try:
        index = faiss.read_index(reader, faiss.IO_FLAG_MMAP)
    except Exception as exc:  # checksummed, so crafted
        raise StoreError(f"damaged ({str(exc).splitlines()[0][-120:]})") from None
    lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(index).invlists)
    if isinstance(lists, faiss.OnDiskInvertedLists):
        lists.prefetch_nthread = 0  # its prefetch threads cost 4 ms a query; pages are cached
    return index


class Settling:
    """The thread that reads, checks and loads an owned copy of a mapped index file."""

    def __init__(
        self, path: Path, f: BinaryIO, size: int, check: Callable[[faiss.Index], None]
    ) -> None:
        self.path, self._f, self._size, self._check = path, f, size, check
        self._cancelled = False
        self._done = threading.Event()
        self._index: faiss.Index | None = None
        self._error: str | None = None
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="index-load", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            index, _, _ = read_v2(self._f, self._size, cancelled=lambda: self._cancelled)
            if index is not None and not self._cancelled:
                self._check(index)
                self._index = index
        except Exception as exc:  # reported to the thread that asks for the result
            self._error = str(exc) or type(exc).__name__
        finally:
            self._f.close()
            self._done.set()

    def done(self) -> bool:
        return self._done.is_set()

    def result(self) -> faiss.Index:
        """The owned index, once loaded; IndexFileDamaged where a check failed."""
        if os.getpid() != self._pid and not self._done.is_set():
            raise IndexFileDamaged(  # a forked child: the loading thread is not in it
                f"index file {self.path} was still loading when this process was forked"
            )
        self._done.wait()
        if self._error is not None or self._index is None:
            raise IndexFileDamaged(f"index file {self.path}: {self._error or 'load cancelled'}")
        return self._index

    def cancel(self) -> None:
        """Stop at the next step (a store closed or its index replaced before it settled)."""
        self._cancelled = True
