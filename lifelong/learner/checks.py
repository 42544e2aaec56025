"""Input checks: what the agent refuses to learn from, before it learns or writes anything."""

from __future__ import annotations

import numpy as np
import torch

from lifelong.errors import BadBatchError


def as_inputs(x, input_shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """Examples as the step takes them (float32), from what users have: a tensor, a numpy
    array (any numeric dtype: uint8 images too) or nested lists; with ``input_shape``, a
    batch of that shape or a ``BadBatchError`` saying so."""
    if isinstance(x, torch.Tensor):
        t = x if x.dtype == torch.float32 else x.float()
    else:
        try:
            arr = np.asarray(x)
        except ValueError as exc:  # ragged lists
            raise BadBatchError(f"x is not a rectangular array ({exc})") from None
        if arr.dtype.kind not in "fiub":
            raise BadBatchError(f"x must be numeric, got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if input_shape is not None and tuple(t.shape[1:]) != tuple(input_shape):
        raise BadBatchError(
            f"examples have shape {tuple(t.shape[1:])}, expected {tuple(input_shape)} "
            "(a batch is (N, *input_shape))"
        )
    return t


def as_labels(y) -> torch.Tensor:
    """Labels as the step takes them (int64), from a tensor, a numpy array or a list;
    whole-valued floats are taken, others refused naming the first."""
    if isinstance(y, torch.Tensor):
        return y
    try:
        arr = np.asarray(y)
    except ValueError as exc:
        raise BadBatchError(f"y is not a flat list of labels ({exc})") from None
    if arr.dtype.kind == "f":
        whole = np.isfinite(arr) & (arr == np.round(arr))
        if not whole.all():
            i = int(np.flatnonzero(~whole)[0])
            raise BadBatchError(f"label at index {i} is {arr.flat[i].item()!r}, not an integer")
    elif arr.dtype.kind not in "iub":
        raise BadBatchError(f"labels must be integers, got dtype {arr.dtype}")
    return torch.from_numpy(np.ascontiguousarray(arr.astype(np.int64, copy=False)))


def check_batch(
    x: torch.Tensor,
    y: torch.Tensor,
    input_shape: tuple[int, ...],
    n_classes: int,
    experience: int,
    position: int,
) -> None:
    """Refuse (``BadBatchError``) examples the agent cannot learn from: wrong shape, NaN or
    inf values, labels outside the classes; the error names the example (``position`` + its
    index). On a GPU the verdict is read back once, so check a whole experience at a time
    (as the runner does) rather than every batch."""
    where = f"experience {experience}"
    if tuple(x.shape[1:]) != tuple(input_shape):
        raise BadBatchError(
            f"{where}: example {position} has shape {tuple(x.shape[1:])}, "
            f"expected {tuple(input_shape)}"
        )
    if len(x) == 0:
        raise BadBatchError(f"{where}: empty batch at example {position}")
    if y.dim() != 1 or len(y) != len(x) or y.is_floating_point() or y.dtype == torch.bool:
        raise BadBatchError(
            f"{where}: batch at example {position} has {len(x)} inputs but labels of shape "
            f"{tuple(y.shape)} and dtype {y.dtype}; expected ({len(x)},) integers"
        )
    finite = torch.isfinite(x.detach().reshape(len(x), -1)).all(1)
    outside = (y < 0) | (y >= n_classes)
    bad_value, bad_label = torch.stack([~finite, outside]).any(1).tolist()
    if bad_value:
        i = position + int((~finite).nonzero()[0])
        raise BadBatchError(f"{where}: example {i} has NaN or inf values")
    if bad_label:
        i = int(outside.nonzero()[0])
        raise BadBatchError(
            f"{where}: example {position + i} has label {int(y[i])}, outside 0..{n_classes - 1}"
        )
