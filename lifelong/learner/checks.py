"""Input checks: what the agent refuses to learn from, before it learns or writes anything."""

from __future__ import annotations

import torch

from lifelong.errors import BadBatchError


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
