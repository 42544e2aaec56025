"""Input checks for store writes and queries; each error names the argument and the row."""

from __future__ import annotations

import numpy as np

from stores.errors import StoreError

FILTER_FIELDS = ("task", "label", "experience", "position")


def finite_rows(arr: np.ndarray, what: str) -> None:
    if arr.dtype.kind == "f" and arr.size:
        bad = ~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1)
        if bad.any():
            raise StoreError(f"{what}: row {int(np.flatnonzero(bad)[0])} has NaN or inf")


def keys_array(keys, dim: int, what: str = "keys") -> np.ndarray:
    arr = np.asarray(keys)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise StoreError(f"{what}: expected shape (n, {dim}), got {tuple(np.shape(keys))}")
    if arr.dtype.kind not in "fiu":
        raise StoreError(f"{what}: must be numeric, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, np.float32)
    finite_rows(arr, what)
    return arr


def values_array(values, n: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    arr = np.asarray(values)
    if arr.shape != (n, *shape):
        raise StoreError(f"values: expected shape {(n, *shape)}, got {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise StoreError(f"values: must be numeric, got dtype {arr.dtype}")
    finite_rows(arr, "values")
    return np.ascontiguousarray(arr, dtype)


def int_column(col, n: int, what: str, allow_none: bool) -> np.ndarray:
    """An int64 column of length n; a scalar is broadcast; None becomes -1 where allowed, and
    there -1 entries mean "none" too (what ``fetch`` returns for them)."""
    if col is None:
        if not allow_none:
            raise StoreError(f"{what}: required")
        return np.full(n, -1, np.int64)
    arr = np.asarray(col)
    if arr.ndim == 0:
        arr = np.full(n, arr)
    if arr.shape != (n,):
        raise StoreError(f"{what}: expected {n} entries, got shape {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise StoreError(f"{what}: must be integers")
    elif arr.dtype.kind not in "iub":
        raise StoreError(f"{what}: must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = arr < (-1 if allow_none else 0)
    if bad.any():
        raise StoreError(f"{what}: row {int(np.flatnonzero(bad)[0])} is negative")
    return arr


def check_where(where: dict | None) -> dict:
    where = dict(where or {})
    unknown = sorted(set(where) - set(FILTER_FIELDS))
    if unknown:
        raise StoreError(f"unknown filter field(s) {unknown}; known: {list(FILTER_FIELDS)}")
    pos = where.get("position")
    if pos is not None and (not isinstance(pos, (tuple, list)) or len(pos) != 2):
        raise StoreError("filter position must be a (start, stop) range; either may be None")
    return where
