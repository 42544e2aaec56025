"""Balanced draws: distinct rows, each group's quota, every member equally likely."""

from __future__ import annotations

import numpy as np
import pytest

from stores.sampling import balanced_rows, group_rows


@pytest.mark.parametrize(
    "sizes, quotas",
    [
        ((1000, 800), (15, 15)),  # the one vectorised draw, nearly always without a repeat
        ((1000, 50, 3), (14, 13, 3)),  # the group of 3 gives all: repeats, group by group
    ],
)
def test_balanced_draws_are_distinct_fill_quotas_and_are_uniform_within_groups(sizes, quotas):
    """20,000 draws of 30 rows balanced over groups of the given sizes.
    Expect: no draw repeats a row; the groups give the quotas (the one draw left over after
    the small group goes to either big one); the first group's members are drawn equally
    often (every count within 5 standard deviations of its mean)."""
    column = np.repeat(np.arange(len(sizes)), sizes)
    _, bounds, order = group_rows(column)
    rng = np.random.default_rng(0)
    counts = np.zeros(len(column), int)
    for _ in range(20_000):
        rows = balanced_rows(bounds, order, 30, rng)
        assert len(np.unique(rows)) == len(rows) == 30
        got = np.bincount(column[rows], minlength=len(sizes))
        assert sorted(got.tolist()) == sorted(quotas)
        counts[rows] += 1
    first = counts[: sizes[0]]
    mean = first.mean()
    assert abs(mean - 20_000 * np.mean(quotas[:2]) / sizes[0]) < 0.2 * mean
    assert np.abs(first - mean).max() < 5 * np.sqrt(mean)
