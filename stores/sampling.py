"""Drawing memories balanced over groups (classes or tasks): one rule for the store and for
the agent's in-RAM working copy, so both replay the same way."""

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
    """Up to n distinct rows: each draw picks a group uniformly, then a member not yet drawn.

    ``bounds`` and ``order`` come from ``group_rows`` (the store keeps them between writes);
    members are drawn per group, so a draw costs the same at a thousand rows or a million.
    """
    sizes = np.diff(bounds)
    quota = _quota(sizes, n, rng)
    picks = [
        order[bounds[g] + rng.choice(sizes[g], quota[g], replace=False)]
        for g in np.flatnonzero(quota)
    ]
    return np.concatenate(picks) if picks else np.empty(0, np.int64)


def balanced_rows_of(column: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``balanced_rows`` for a small column (the agent's memory of a few thousand rows):
    grouped and shuffled by one sort of random keys, which costs less than keeping a
    grouping up to date through writes, or one ``choice`` per group. Not for a million rows:
    the sort is over all of them."""
    shuffled = np.argsort(column + rng.random(len(column)))
    _, bounds = _runs(column[shuffled])
    sizes = np.diff(bounds)
    quota = _quota(sizes, n, rng)  # a group yields its shuffled members in order
    firsts = np.repeat(bounds[:-1] - np.cumsum(quota) + quota, quota)
    return shuffled[firsts + np.arange(quota.sum())]


def _runs(ordered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of a sorted column and the bounds of their runs."""
    if len(ordered) == 0:
        return ordered, np.zeros(1, np.int64)
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    return ordered[starts], np.append(starts, len(ordered))


def _quota(sizes: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """How many of the n draws land on each group (uniform over groups, capped by size)."""
    if len(sizes) == 0:
        return sizes
    return np.minimum(np.bincount(rng.integers(0, len(sizes), n), minlength=len(sizes)), sizes)
