"""Reading ``.npz`` archives from strangers (HTTP bodies, task files dropped in a folder).

``np.load`` inflates whatever an archive's members hold: a 0.6 MB body of zeros can ask for
gigabytes before anyone looks at it. Here every member's ``.npy`` header (dtype and shape) is
read first and the array's size counted against a limit before its bytes are inflated, and
each member is read by exactly the size its header declares, so neither a lying zip directory
nor a lying header makes us hold more than the limit. No object arrays, no pickle.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from io import BytesIO

import numpy as np

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members, an empty zip


class NpzError(ValueError):
    """An archive that is not a set of plain ``.npy`` arrays (names the member and why)."""


class NpzTooLarge(NpzError):
    """An archive whose arrays would take more than the limit once inflated (HTTP 413)."""


class NpzTruncated(NpzError):
    """An archive cut short (a file still being written, a body cut off)."""


def read_npz(data: bytes, max_bytes: int, what: str = "archive") -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` archive, by name, holding at most ``max_bytes`` in all."""
    if not data.startswith(ZIP_MAGIC):
        raise NpzError(f"{what} is not an npz archive (a zip of .npy arrays, as np.savez writes)")
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            members = archive.infolist()
            declared = sum(m.file_size for m in members)
            if declared > max_bytes:
                raise NpzTooLarge(
                    f"{what} inflates to {declared:,} bytes, over the {max_bytes:,}-byte limit"
                )
            arrays, budget = {}, max_bytes
            for member in members:
                name = member.filename
                if not name.endswith(".npy"):
                    raise NpzError(f"{what}: member {name!r} is not an .npy array")
                with archive.open(member) as f:
                    arrays[name[: -len(".npy")]] = _read_member(f, budget, f"{what}: {name}")
                budget -= arrays[name[: -len(".npy")]].nbytes
            return arrays
    except (zipfile.BadZipFile, EOFError) as exc:
        raise NpzTruncated(f"{what} is not a complete zip archive ({exc})") from None
    except (zlib.error, NotImplementedError, RuntimeError) as exc:  # bad data, method, password
        raise NpzError(f"{what} cannot be inflated ({exc})") from None


def _read_member(f, budget: int, what: str) -> np.ndarray:
    """One ``.npy`` member: header first, then exactly the bytes it declares."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise NpzError(f"{what}: .npy format version {version} is not read here")
    except ValueError as exc:
        if isinstance(exc, NpzError):
            raise
        raise NpzError(f"{what}: not an .npy array ({exc})") from None
    if dtype.hasobject:
        raise NpzError(f"{what}: object arrays are not accepted (dtype {dtype})")
    size = math.prod(shape) * dtype.itemsize
    if size > budget:
        raise NpzTooLarge(
            f"{what}: a {dtype} array of shape {shape} is {size:,} bytes, over what is left "
            f"of the limit ({budget:,} bytes)"
        )
    buf = bytearray(size)
    view, got = memoryview(buf), 0
    while got < size:
        n = f.readinto(view[got:])
        if not n:
            raise NpzTruncated(f"{what}: holds {got:,} of the {size:,} bytes its header declares")
        got += n
    if f.read(1):
        raise NpzError(f"{what}: holds more bytes than its header declares")
    flat = np.frombuffer(buf, dtype=dtype)
    return flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)
