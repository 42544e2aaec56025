"""Shared fixtures: small real streams (scikit-learn's 8x8 digits, the shipped MNIST digits)."""

from __future__ import annotations

import pytest
import torch

import streams


@pytest.fixture(scope="session")
def digits_split() -> streams.Stream:
    return streams.get_stream("split-digits", experiences=5, seed=0)


@pytest.fixture(autouse=True)
def _few_threads():
    # Two cores on CI: keep torch from oversubscribing when pytest runs subprocesses.
    torch.set_num_threads(1)
    yield
