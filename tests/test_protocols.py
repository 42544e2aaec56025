"""The named online protocols (configs/*.toml) and the torchvision loading path, run on a
tiny cache written in torchvision's own on-disk format (no download: the real loader reads
real idx files)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

import streams
from lifelong.config import RunConfig
from lifelong.learner.agent import Agent, StreamSpec
from lifelong.runner import run

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_protocol_configs_load_and_build_their_learner(path):
    cfg = RunConfig.load(path)
    assert cfg.model == "reduced-resnet18" and cfg.iters == 1 and cfg.replay_batch == 10
    assert cfg.batch_size == 10 and cfg.memory == int(path.stem.split("-m")[1])
    n_classes = 100 if "cifar100" in cfg.stream else 10
    spec = StreamSpec((3, 32, 32), n_classes, False, "class")
    agent = Agent(cfg.learner(), spec, Agent.memory_for(cfg.learner(), spec))
    assert agent.model.embedding_dim == 160 and agent.store.spec.dim == 160


def _idx(path: Path, array: np.ndarray) -> None:
    """An idx file as MNIST ships them (big-endian header, uint8 payload)."""
    header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def fake_mnist_cache(root: Path, n_train: int = 300, n_test: int = 100) -> None:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 50, (n, 28, 28))
        images[np.arange(n), labels * 2, :] = 255  # a learnable stripe per class
        _idx(raw / f"{split}-images-idx3-ubyte", images)
        _idx(raw / f"{split}-labels-idx1-ubyte", labels)


@pytest.mark.slow
def test_torchvision_mnist_through_the_real_loader(tmp_path, monkeypatch):
    import urllib.request

    def refuse(*a, **k):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    fake_mnist_cache(tmp_path)
    s = streams.get_stream("split-mnist", experiences=5, data_root=str(tmp_path))
    assert s.input_shape == (1, 28, 28) and [e.n_train for e in s] == [60] * 5
    monkeypatch.setenv("LIFELONG_DATA", str(tmp_path))
    cfg = RunConfig(stream="split-mnist", experiences=2, iters=1, progress=False)
    result = run(cfg, tmp_path / "run", echo=lambda m: None)
    assert result.matrix.shape == (2, 2) and result.matrix[-1].mean() > 0.5
