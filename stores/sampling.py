"""Drawing memories balanced over groups (classes or tasks), stratified: a draw of 10 from 10
classes holds every class. (The agent's replay draws from its working copy on its own
device: ``lifelong.learner.replay_memory``.)"""

from __future__ import annotations

import numpy as np


def group_rows(column: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, bounds, order): row numbers sorted by ``column``; group g is
    ``order[bounds[g]:bounds[g + 1]]`` and holds value ``values[g]``."""
    order = np.argsort(column, kind="stable")
    values, bounds = _runs(column[order])
    return values, bounds, order


def balanced_rows(
    bounds: np.ndarray, order: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Up to n distinct rows, balanced over groups (``_quota``), members drawn without
    replacement.

    ``bounds`` and ``order`` come from ``group_rows`` (the store keeps them between writes);
    members are drawn per group, so a draw costs the same at a thousand rows or a million.
    """
    sizes = np.diff(bounds)
    quota = _quota(sizes, n, rng)
    # One vectorised draw with replacement, kept when it holds no repeat (then it is a
    # uniform draw without replacement in every group): 0.02 ms where a choice() per group
    # cost 0.13 ms for 10 classes. A repeat, likely only where a group gives most of what it
    # holds, falls back to drawing group by group.
    groups = np.repeat(np.arange(len(sizes)), quota)
    picked = bounds[groups] + (rng.random(len(groups)) * sizes[groups]).astype(np.int64)
    if len(np.unique(picked)) == len(picked):
        return order[picked]
    picks = [
        order[bounds[g] + rng.choice(sizes[g], quota[g], replace=False)]
        for g in np.flatnonzero(quota)
    ]
    return np.concatenate(picks) if picks else np.empty(0, np.int64)


def _runs(ordered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of a sorted column and the bounds of their runs."""
    if len(ordered) == 0:
        return ordered, np.zeros(1, np.int64)
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    return ordered[starts], np.append(starts, len(ordered))


def _quota(sizes: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """How many of the n draws each group gives: stratified as evenly as the group sizes
    allow (water-filling: every group gives ``min(size, level)``), and the few draws left
    over go one each to groups with members to spare, chosen at random. A draw of 10 from
    10 classes holds every class; a class too small gives all it has."""
    total, level = min(n, int(sizes.sum())), 0
    left, groups = total, len(sizes)
    for size in np.sort(sizes):  # the smallest groups are used up first
        if size * groups > left:
            level = left // groups
            break
        left, groups = left - int(size), groups - 1
    else:
        return sizes.astype(np.int64)
    quota = np.minimum(sizes, level).astype(np.int64)
    spare = np.flatnonzero(sizes > level)
    quota[rng.choice(spare, total - int(quota.sum()), replace=False)] += 1
    return quota
