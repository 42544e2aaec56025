"""Shared fixtures: small real streams (scikit-learn's 8x8 digits, the shipped MNIST digits),
and ``device``: every test that takes it runs once per device in ``LIFELONG_TEST_DEVICES``
(comma-separated; the CPU when unset). ``make test-gpu`` sets it to every CUDA device."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import streams
from tests.run_helpers import reference_run


def devices_under_test() -> list[str]:
    return [d.strip() for d in os.environ.get("LIFELONG_TEST_DEVICES", "cpu").split(",") if d]


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        metafunc.parametrize("device", devices_under_test())


@pytest.fixture(scope="session")
def digits_split() -> streams.Stream:
    return streams.get_stream("split-digits", experiences=5, seed=0)


@pytest.fixture(scope="session")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted small run (tests/run_helpers.SMALL) that others must equal."""
    return reference_run(tmp_path_factory)


@pytest.fixture(autouse=True)
def _few_threads():
    # Two cores on CI: keep torch from oversubscribing when pytest runs subprocesses.
    torch.set_num_threads(1)
    yield


@pytest.fixture(autouse=True)
def _no_server_left_running():
    """A serve test that fails half way leaves no server process behind."""
    yield
    from tests.serve_helpers import Served

    Served.kill_leftovers()
