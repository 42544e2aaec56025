"""Helpers shared by the store tests and the subprocesses they start."""

from __future__ import annotations

import numpy as np

DIM, VSHAPE = 8, (2, 3)


def batch(rng: np.random.Generator, n: int, n_labels: int = 4):
    keys = rng.standard_normal((n, DIM)).astype(np.float32)
    values = rng.random((n, *VSHAPE)).astype(np.float32)
    labels = rng.integers(0, n_labels, n)
    return keys, values, labels
