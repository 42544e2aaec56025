"""The index file: the FAISS index and a snapshot of the RAM catalog, streamed to and from disk.

Opening a store with millions of memories was two full reads of its rows: the catalog (ids,
labels, tasks, ...) from SQLite, row by row, and the index file read whole, checksummed,
then copied twice on its way into FAISS. Both are caches of the database at one version, so
both go in one file, written atomically and streamed: FAISS writes straight into the file
(the checksum computed on the way) and reads straight from it, once the bytes have passed
their checksum in a pass of their own (FAISS never parses bytes that fail it).

Layout (version 2)::

    MAGIC2 | FAISS index bytes | pad | catalog (int64, one column after another) | header | u64

The header (its length in the last 8 bytes) goes last because its checksums are known only
once the bytes before it are written. Besides the checksum of all FAISS bytes it holds one
for each block of ``BLOCK`` bytes and, for an IVF index, how many bytes its lists take (they
come last): an open that maps the lists checks only the blocks before them
(``stores.mapped_index``). Checksums are XXH3 (4x zlib's CRC-32 here: 0.07 s
against 0.27 s for 500 MB). Version 1 files (MAGIC, u64 header length, header, FAISS bytes;
no catalog; CRC-32) are still read.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
import xxhash

from stores.errors import StoreError
from stores.files import replaced

MAGIC1 = b"LLKEYIDX1\n"
MAGIC2 = b"LLKEYIDX2\n"
CHUNK = 1 << 22  # bytes FAISS asks for at a time when streaming
BLOCK = 1 << 22  # bytes under each block checksum


class Damaged(Exception):
    """The file ends early or its bytes do not match their checksum."""


class _Unparsable(Exception):
    """Bytes that pass their checksum and that FAISS cannot read (written so on purpose)."""


def write_index_file(
    path: Path,
    index: faiss.Index,
    header: dict,
    catalog: np.ndarray | None,
    list_bytes: int = 0,
) -> None:
    """Replace ``path`` with the index, the catalog columns (``(fields, n)`` int64) and the
    header (to which the checksums and sizes are added), whole or not at all.
    ``list_bytes``: how many of FAISS's bytes, at their end, are an IVF index's lists."""
    header = dict(header)
    with replaced(path) as f:
        f.write(MAGIC2)
        digest, size, blocks = xxhash.xxh3_64(), 0, _Blocks()

        def sink(chunk: bytes) -> None:
            nonlocal size
            f.write(chunk)
            digest.update(chunk)
            blocks.update(chunk)
            size += len(chunk)

        faiss.write_index(index, faiss.PyCallbackIOWriter(sink, CHUNK))
        header.update(xxh3=digest.hexdigest(), size=size, catalog_rows=0, catalog_fields=0)
        header.update(block_size=BLOCK, blocks=blocks.finish(), list_bytes=list_bytes)
        if catalog is not None:
            # zeros up to a multiple of 8 bytes: a mapped catalog is then an aligned array
            # (numpy copies an unaligned one whole on every searchsorted: 1 ms at 2M)
            pad = -(len(MAGIC2) + size) % 8
            f.write(bytes(pad))
            header["catalog_pad"] = pad
            for column in catalog:  # rows of the column block are contiguous
                f.write(memoryview(np.ascontiguousarray(column, np.int64)).cast("B"))
            header.update(
                catalog_rows=int(catalog.shape[1]),
                catalog_fields=int(catalog.shape[0]),
                catalog_xxh3=_digest(catalog),
            )
        blob = json.dumps(header).encode()
        f.write(blob + struct.pack("<Q", len(blob)))


def read_index_file(path: Path) -> tuple[faiss.Index, dict, np.ndarray | None]:
    """(index, header, catalog columns or None); StoreError naming the file if it is
    missing, cut short, alien, or fails its checksum."""
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed below, after streaming)
    except FileNotFoundError:
        raise StoreError(f"index file {path} does not exist") from None
    except OSError as exc:
        raise StoreError(f"index file {path} cannot be read: {exc.strerror}") from None
    try:
        with f:
            magic = f.read(len(MAGIC2))
            if magic == MAGIC2:
                return read_v2(f, os.fstat(f.fileno()).st_size)
            if magic == MAGIC1:
                return _read_v1(f)
            raise StoreError(f"index file {path} is not a lifelong key index")
    except Damaged as exc:
        raise StoreError(f"index file {path} is truncated or corrupt ({exc})") from None
    except _Unparsable as exc:
        raise StoreError(f"index file {path} is damaged ({exc})") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"index file {path} has a corrupt header ({exc!r})") from None
    except OSError as exc:
        raise StoreError(f"index file {path} cannot be read: {exc.strerror}") from None


class _Blocks:
    """xxh3 of each ``BLOCK`` bytes of a stream, whatever sizes it arrives in."""

    def __init__(self) -> None:
        self.done: list[str] = []
        self._digest, self._held = xxhash.xxh3_64(), 0

    def update(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while len(view):
            take = min(BLOCK - self._held, len(view))
            self._digest.update(view[:take])
            self._held += take
            view = view[take:]
            if self._held == BLOCK:
                self.done.append(self._digest.hexdigest())
                self._digest, self._held = xxhash.xxh3_64(), 0

    def finish(self) -> list[str]:
        return self.done + ([self._digest.hexdigest()] if self._held else [])


def block_digests_match(f, header: dict, upto: int) -> bool:
    """Whether the blocks of FAISS bytes covering ``[0, upto)`` match their checksums (False
    for a file written without them)."""
    blocks, size = header.get("blocks"), int(header.get("block_size", 0))
    if not blocks or size <= 0:
        return False
    count = min(-(-max(upto, 1) // size), len(blocks))
    f.seek(len(MAGIC2))
    for expected in blocks[:count]:
        chunk = f.read(size)
        if not chunk or xxhash.xxh3_64_hexdigest(chunk) != expected:
            return False
    return True


def read_v2_header(f, file_size: int) -> dict:
    """The header of a version 2 file whose sizes add up (Damaged where they do not)."""
    if file_size < len(MAGIC2) + 8:
        raise Damaged("shorter than its header")
    f.seek(file_size - 8)
    (hlen,) = struct.unpack("<Q", f.read(8))
    if hlen > file_size - len(MAGIC2) - 8:
        raise Damaged("header length past the file's start")
    f.seek(file_size - 8 - hlen)
    try:
        header = json.loads(f.read(hlen))
        rows, fields = int(header["catalog_rows"]), int(header["catalog_fields"])
        expected = catalog_offset(header) + 8 * rows * fields + hlen + 8
    except (ValueError, KeyError, TypeError):
        raise Damaged("its header is unreadable") from None
    if expected != file_size:
        raise Damaged(f"{file_size} bytes where the header says {expected}")
    return header


def catalog_offset(header: dict) -> int:
    """Where the catalog starts in a version 2 file (after its padding, in newer files that
    hold one)."""
    pad = int(header.get("catalog_pad", 0)) if int(header["catalog_fields"]) else 0
    return len(MAGIC2) + int(header["size"]) + pad


def read_v2(
    f, file_size: int, cancelled: Callable[[], bool] | None = None
) -> tuple[faiss.Index | None, dict, np.ndarray | None]:
    """(index, header, catalog) of a version 2 file, every byte checked; the index is None
    where ``cancelled()`` turned true on the way (checked between steps)."""
    header = read_v2_header(f, file_size)
    rows, fields = int(header["catalog_rows"]), int(header["catalog_fields"])
    # the checksum first, in a pass of its own: FAISS never parses bytes that fail it
    f.seek(len(MAGIC2))
    digest = _digest_of_file(f, int(header["size"]), cancelled)
    if cancelled is not None and cancelled():
        return None, header, None
    if digest != header["xxh3"]:
        raise Damaged("the index bytes fail their checksum")
    f.seek(len(MAGIC2))
    index = _read_faiss(f, int(header["size"]))
    f.seek(catalog_offset(header))
    catalog = None
    if fields:
        catalog = np.fromfile(f, np.int64, rows * fields).reshape(fields, rows)
        if catalog.size != rows * fields or _digest(catalog) != header["catalog_xxh3"]:
            raise Damaged("the catalog fails its checksum")
    return index, header, catalog


def _digest_of_file(f, size: int, cancelled: Callable[[], bool] | None = None) -> str:
    view, digest, left = memoryview(bytearray(CHUNK)), xxhash.xxh3_64(), size
    while left and not (cancelled is not None and cancelled()):
        got = f.readinto(view[: min(CHUNK, left)])
        if not got:
            raise Damaged(f"{size - left} of {size} index bytes")
        digest.update(view[:got])
        left -= got
    return digest.hexdigest()


def _read_faiss(f, size: int) -> faiss.Index:
    """FAISS's own reader on this very file (``/proc/self/fd``: not a path another writer
    may have replaced since its checksum passed) reads 5.4 GB at 10M keys in 1.0 s where
    streaming it through Python took 2.7 s; elsewhere, or on an old FAISS, the stream."""
    same_file = Path(f"/proc/self/fd/{f.fileno()}")
    if not hasattr(faiss, "FileIOReader") or not same_file.exists():
        return _stream_faiss(f, size)
    try:
        reader = faiss.FileIOReader(str(same_file))
        skip = np.empty(len(MAGIC2), np.uint8)
        if reader(faiss.swig_ptr(skip), 1, len(skip)) != len(skip):
            raise Damaged("shorter than its header")
        return faiss.read_index(reader)
    except Damaged:
        raise
    except Exception as exc:  # FAISS on bytes it cannot parse (checksummed, so crafted)
        raise _Unparsable(_first_line(exc)) from None


def _stream_faiss(f, size: int) -> faiss.Index:
    """FAISS reads its ``size`` bytes from ``f`` as it parses them (no copy of the whole)."""
    left = size

    def source(n: int) -> bytes:
        nonlocal left
        chunk = f.read(min(n, left))
        left -= len(chunk)
        return chunk

    try:
        index = faiss.read_index(faiss.PyCallbackIOReader(source, CHUNK))
    except Exception as exc:  # FAISS on bytes it cannot parse (checksummed, so crafted)
        raise _Unparsable(_first_line(exc)) from None
    if left:
        raise Damaged(f"FAISS read {size - left} of its {size} bytes")
    return index


def _digest(columns: np.ndarray) -> str:
    digest = xxhash.xxh3_64()
    for column in columns:
        digest.update(memoryview(np.ascontiguousarray(column)).cast("B"))
    return digest.hexdigest()


def _read_v1(f) -> tuple[faiss.Index, dict, None]:
    (hlen,) = struct.unpack("<Q", f.read(8))
    header = json.loads(f.read(hlen))
    blob = f.read()
    if len(blob) != header["size"] or zlib.crc32(blob) != header["crc32"]:
        raise Damaged(f"{len(blob)} of {header['size']} bytes, checksum mismatch")
    try:
        return faiss.deserialize_index(np.frombuffer(blob, np.uint8)), header, None
    except Exception as exc:
        raise _Unparsable(_first_line(exc)) from None


def _first_line(exc: Exception) -> str:
    """FAISS's message without its C++ location: what it could not read."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return "FAISS cannot read it: " + text.rsplit(": ", 1)[-1][:120]
