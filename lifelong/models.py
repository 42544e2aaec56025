"""Backbones with a classification head. ``forward(x, task_labels=None)`` so Avalanche's
LaMAML (which calls ``model(x, task_labels)``) can train the very same model."""

from __future__ import annotations

import math

import torch
from torch import nn


class Backbone(nn.Module):
    """``features`` (the embedding that keys memories) followed by a linear ``head``."""

    features: nn.Module
    head: nn.Linear

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor, task_labels=None) -> torch.Tensor:
        return self.head(self.features(x))


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
