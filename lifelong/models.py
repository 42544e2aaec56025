"""Backbones with a classification head. ``forward(x, task_labels=None)`` so Avalanche's
LaMAML (which calls ``model(x, task_labels)``) can train the very same model."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call


class Backbone(nn.Module):
    """``features`` (the embedding that keys memories) followed by a linear ``head``."""

    features: nn.Module
    head: nn.Linear

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor, task_labels=None) -> torch.Tensor:
        return self.head(self.features(x))

    def forward_with(self, weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """The forward pass with other weights (the controller's look-ahead)."""
        return functional_call(self, weights, (x,))


class MLP(Backbone):
    """The usual Split/Permuted-MNIST network: input-hidden-hidden-classes with ReLU."""

    def __init__(self, input_shape: tuple[int, ...], n_classes: int, hidden: int = 100):
        super().__init__()
        self.features = nn.Sequential(
            nn.Flatten(),
            nn.Linear(math.prod(input_shape), hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )
        self.head = nn.Linear(hidden, n_classes)
        self.embedding_dim = hidden

    def forward_with(self, weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """As ``functional_call``, without its per-call swapping of module attributes, which
        costs more than the arithmetic at this size (the look-ahead calls it 4 times a step)."""
        w = weights
        h = F.relu(F.linear(x.flatten(1), w["features.1.weight"], w["features.1.bias"]))
        h = F.relu(F.linear(h, w["features.3.weight"], w["features.3.bias"]))
        return F.linear(h, w["head.weight"], w["head.bias"])


class SmallCNN(Backbone):
    """Three strided 3x3 conv layers and a hidden linear layer for 32x32 colour streams."""

    def __init__(self, input_shape: tuple[int, ...], n_classes: int, hidden: int = 160):
        super().__init__()
        c = input_shape[0]
        layers: list[nn.Module] = []
        for i in range(3):
            layers += [nn.Conv2d(c if i == 0 else 32, 32, 3, stride=2, padding=1), nn.ReLU()]
        layers += [nn.Flatten()]
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            flat = self.features(torch.zeros(1, *input_shape)).shape[1]
        self.features.append(nn.Linear(flat, hidden))
        self.features.append(nn.ReLU())
        self.head = nn.Linear(hidden, n_classes)
        self.embedding_dim = hidden


def build_model(kind: str, input_shape: tuple[int, ...], n_classes: int, hidden: int) -> nn.Module:
    """``auto`` picks the CNN for colour images and the MLP otherwise."""
    if kind == "auto":
        kind = "cnn" if len(input_shape) == 3 and input_shape[0] == 3 else "mlp"
    if kind == "mlp":
        return MLP(input_shape, n_classes, hidden)
    return SmallCNN(input_shape, n_classes, max(hidden, 64))
