"""Drawing memories balanced over groups (classes or tasks): one rule for the store and for
the agent's in-RAM working copy, so both replay the same way."""

from __future__ import annotations

import numpy as np


def group_rows(column: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, bounds, order): row numbers sorted by ``column``; group g is
    ``order[bounds[g]:bounds[g + 1]]`` and holds value ``values[g]``."""
    order = np.argsort(column, kind="stable")
    values, starts = np.unique(column[order], return_index=True)
    return values, np.append(starts, len(column)), order


def balanced_rows(
    bounds: np.ndarray, order: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Up to n distinct rows: each draw picks a group uniformly, then a member not yet drawn.

    All groups' members are drawn in one shuffle (a random key per row, sorted within its
    group) rather than one ``choice`` per group: a replay batch is drawn every update.
    """
    sizes = np.diff(bounds)
    quota = np.bincount(rng.integers(0, len(sizes), n), minlength=len(sizes))
    quota = np.minimum(quota, sizes)
    group_of = np.repeat(np.arange(len(sizes)), sizes)  # of each position in ``order``
    shuffled = np.argsort(group_of + rng.random(len(order)))  # stays grouped, random inside
    firsts = np.repeat(bounds[:-1] - np.cumsum(quota) + quota, quota)
    return order[shuffled[firsts + np.arange(quota.sum())]]
