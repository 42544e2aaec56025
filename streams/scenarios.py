"""Scenarios: how a source becomes a stream (split, permuted, rotated, blurry).

Every random choice (class order, permutations, angles, blurring) comes from the seed,
so the same seed gives identical tensors.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from streams.core import Experience, Stream
from streams.errors import StreamError
from streams.sources import Dataset


def _class_groups(n_classes: int, n_experiences: int, seed: int, class_order=None):
    if not 1 <= n_experiences <= n_classes:
        raise StreamError(f"cannot split {n_classes} classes into {n_experiences} experiences")
    order = (
        list(class_order)
        if class_order is not None
        else np.random.default_rng(seed).permutation(n_classes).tolist()
    )
    if sorted(order) != list(range(n_classes)):
        raise StreamError(f"class_order must be a permutation of 0..{n_classes - 1}, got {order}")
    return [tuple(int(c) for c in g) for g in np.array_split(np.array(order), n_experiences)]


def _sorted(group) -> tuple[int, ...]:
    return tuple(sorted(group))


def _select(y: torch.Tensor, classes) -> torch.Tensor:
    return torch.isin(y, torch.tensor(classes, dtype=y.dtype)).nonzero().squeeze(1)


def split(
    data: Dataset, n_experiences: int = 5, seed: int = 0, scenario: str = "class", class_order=None
) -> Stream:
    """Class-incremental ("class") or task-incremental ("task": each experience its task id)."""
    if scenario not in ("class", "task"):
        raise StreamError(f"split scenario must be 'class' or 'task', got {scenario!r}")
    groups = _class_groups(data.n_classes, n_experiences, seed, class_order)
    train_idx = [_select(data.y_train, g) for g in groups]
    test_idx = [_select(data.y_test, g) for g in groups]

    def build(i: int) -> Experience:
        tr, te = train_idx[i], test_idx[i]
        return Experience(
            i,
            data.x_train[tr],
            data.y_train[tr],
            data.x_test[te],
            data.y_test[te],
            task_id=i if scenario == "task" else 0,
            classes=_sorted(groups[i]),
        )

    return Stream(
        f"split-{data.name}",
        scenario,
        n_experiences,
        data.n_classes,
        data.input_shape,
        build,
        seed,
        {"class_order": [c for g in groups for c in g]},
    )


def permuted(
    data: Dataset, n_experiences: int = 10, seed: int = 0, first_identity: bool = True
) -> Stream:
    """Domain-incremental: experience i shuffles the pixels with its own fixed permutation."""
    n_pix = math.prod(data.input_shape)
    gen = torch.Generator().manual_seed(seed)
    perms = [torch.randperm(n_pix, generator=gen) for _ in range(n_experiences)]
    if first_identity:
        perms[0] = torch.arange(n_pix)
    classes = tuple(range(data.n_classes))

    def apply(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)[:, p].reshape(x.shape)

    def build(i: int) -> Experience:
        p = perms[i]
        return Experience(
            i,
            apply(data.x_train, p),
            data.y_train,
            apply(data.x_test, p),
            data.y_test,
            task_id=0,
            classes=classes,
        )

    return Stream(
        f"permuted-{data.name}",
        "domain",
        n_experiences,
        data.n_classes,
        data.input_shape,
        build,
        seed,
        {"first_identity": first_identity},
    )


def rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate a batch of images (N, C, H, W) about their centre, zero-filled, bilinear."""
    if degrees == 0:
        return x.clone()
    a = math.radians(degrees)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]])
    grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def rotated(
    data: Dataset,
    n_experiences: int = 5,
    seed: int = 0,
    first_identity: bool = True,
    max_degrees: float = 180.0,
) -> Stream:
    """Domain-incremental: experience i rotates every image by its own angle from the seed."""
    angles = np.random.default_rng(seed).uniform(0.0, max_degrees, n_experiences).round(2)
    if first_identity:
        angles[0] = 0.0
    classes = tuple(range(data.n_classes))

    def build(i: int) -> Experience:
        return Experience(
            i,
            rotate(data.x_train, angles[i]),
            data.y_train,
            rotate(data.x_test, angles[i]),
            data.y_test,
            task_id=0,
            classes=classes,
        )

    return Stream(
        f"rotated-{data.name}",
        "domain",
        n_experiences,
        data.n_classes,
        data.input_shape,
        build,
        seed,
        {"angles": angles.tolist()},
    )


def blurry(data: Dataset, n_experiences: int = 5, seed: int = 0, overlap: float = 0.1) -> Stream:
    """Task-free: a split stream whose boundaries are blurred and hidden (task id None).

    Each training example moves from its home experience to a neighbouring one with
    probability ``overlap``; test sets stay by home classes so the accuracy matrix is defined.
    """
    if not 0.0 <= overlap <= 1.0:
        raise StreamError(f"overlap must be in [0, 1], got {overlap}")
    groups = _class_groups(data.n_classes, n_experiences, seed, None)
    home = torch.empty_like(data.y_train)
    for i, g in enumerate(groups):
        home[_select(data.y_train, g)] = i
    rng = np.random.default_rng(seed + 1)
    move = rng.random(home.shape[0]) < overlap
    step = np.where(rng.random(home.shape[0]) < 0.5, -1, 1)
    target = home.numpy() + np.where(move, step, 0)
    target = np.where((target < 0) | (target >= n_experiences), home.numpy() - step, target)
    assign = torch.from_numpy(np.clip(target, 0, n_experiences - 1))
    test_idx = [_select(data.y_test, g) for g in groups]

    def build(i: int) -> Experience:
        tr = (assign == i).nonzero().squeeze(1)
        # shuffle within the experience so borrowed examples are spread along it
        tr = tr[torch.randperm(tr.numel(), generator=torch.Generator().manual_seed(seed + 7 + i))]
        te = test_idx[i]
        y = data.y_train[tr]
        return Experience(
            i,
            data.x_train[tr],
            y,
            data.x_test[te],
            data.y_test[te],
            task_id=None,
            classes=tuple(sorted(int(c) for c in y.unique())),
        )

    return Stream(
        f"blurry-{data.name}",
        "task-free",
        n_experiences,
        data.n_classes,
        data.input_shape,
        build,
        seed,
        {"overlap": overlap},
    )
