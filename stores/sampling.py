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

    ``bounds`` and ``order`` come from ``group_rows`` (the store keeps them between writes).
    All groups' members are shuffled at once (a random key per row, sorted within its group)
    rather than one ``choice`` per group: a replay batch is drawn every update.
    """
    group_of = np.repeat(np.arange(len(bounds) - 1), np.diff(bounds))
    shuffled = order[np.argsort(group_of + rng.random(len(order)))]
    return _take(bounds, shuffled, n, rng)


def balanced_rows_of(column: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``balanced_rows`` for a column of small integers, grouped and shuffled by one sort:
    for a memory of a few thousand rows that is cheaper than keeping a grouping up to date
    through writes."""
    shuffled = np.argsort(column + rng.random(len(column)))
    _, bounds = _runs(column[shuffled])
    return _take(bounds, shuffled, n, rng)


def _runs(ordered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of a sorted column and the bounds of their runs."""
    if len(ordered) == 0:
        return ordered, np.zeros(1, np.int64)
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    return ordered[starts], np.append(starts, len(ordered))


def _take(bounds: np.ndarray, shuffled: np.ndarray, n: int, rng) -> np.ndarray:
    """Pick a group uniformly per draw; a group yields its (shuffled) members in order."""
    sizes = np.diff(bounds)
    if len(sizes) == 0:
        return np.empty(0, np.int64)
    quota = np.minimum(np.bincount(rng.integers(0, len(sizes), n), minlength=len(sizes)), sizes)
    firsts = np.repeat(bounds[:-1] - np.cumsum(quota) + quota, quota)
    return shuffled[firsts + np.arange(quota.sum())]
