"""Checks on user data, each error naming the array, the experience and the first bad index."""

from __future__ import annotations

import numpy as np
import torch

from streams.errors import StreamError


def as_features(x, what: str) -> torch.Tensor:
    """float32 tensor with finite values, else a StreamError naming ``what`` and the index."""
    if not isinstance(x, torch.Tensor):
        x = np.asarray(x)
        if x.dtype.kind not in "fiub":
            raise StreamError(f"{what}: features must be numeric, got dtype {x.dtype}")
    t = torch.as_tensor(x)
    if not (
        t.is_floating_point()
        or t.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
    ):
        raise StreamError(f"{what}: features must be numeric, got dtype {t.dtype}")
    t = t.to(torch.float32)
    if t.ndim < 2:
        raise StreamError(f"{what}: expected shape (N, ...features), got {tuple(t.shape)}")
    bad = ~torch.isfinite(t.flatten(1)).all(dim=1)
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise StreamError(f"{what}: example {i} has NaN or inf values")
    return t


def as_labels(y, what: str, n_classes: int | None) -> torch.Tensor:
    """int64 label tensor in [0, n_classes), else a StreamError naming the bad label."""
    arr = y.numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if arr.ndim != 1:
        raise StreamError(f"{what}: labels must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind == "f":
        frac = ~np.isfinite(arr) | (arr != np.round(arr))
        if frac.any():
            i = int(np.flatnonzero(frac)[0])
            raise StreamError(f"{what}: label at index {i} is {arr[i].item()!r}, not an integer")
    elif arr.dtype.kind not in "iub":
        raise StreamError(f"{what}: labels must be integers, got dtype {arr.dtype}")
    # ranges checked on the values as sent (1e30 cast to int64 would be reported as garbage)
    negative = arr < 0
    if negative.any():
        i = int(np.flatnonzero(negative)[0])
        raise StreamError(f"{what}: label at index {i} is {_shown(arr[i])}, labels must be >= 0")
    if n_classes is not None:
        over = arr >= n_classes
        if over.any():
            i = int(np.flatnonzero(over)[0])
            raise StreamError(
                f"{what}: label at index {i} is {_shown(arr[i])}, out of range for "
                f"{n_classes} classes"
            )
    elif arr.size and arr.max() > np.iinfo(np.int64).max:
        i = int(np.argmax(arr))
        raise StreamError(f"{what}: label at index {i} is {_shown(arr[i])}, past int64")
    t = torch.as_tensor(arr.astype(np.int64))
    return t


def _shown(value: np.generic) -> str:
    """A label as it was sent: 7 for 7.0, 1e+30 for 1e30."""
    v = value.item()
    return str(int(v)) if isinstance(v, float) and abs(v) < 1e15 else str(v)


def check_pair(x: torch.Tensor, y: torch.Tensor, what: str) -> None:
    if x.shape[0] != y.shape[0]:
        raise StreamError(f"{what}: x has {x.shape[0]} examples but y has {y.shape[0]}")
