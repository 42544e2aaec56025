"""Backbones with a classification head. ``forward(x, task_labels=None)`` so Avalanche's
LaMAML (which calls ``model(x, task_labels)``) can train the very same model."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lifelong.errors import ConfigError
from lifelong.learner import user_code
from lifelong.learner.backbone import Backbone, Pass
from lifelong.learner.resnet import ResNet18

_relu_backward = torch.ops.aten.threshold_backward  # grad where the output is > 0, else 0


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

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``features(x)`` without a module call per layer (the prediction controller embeds
        every incoming batch of 10, where the calls cost more than the products)."""
        l1, l2 = self.features[1], self.features[3]
        return F.relu(
            F.linear(F.relu(F.linear(x.flatten(1), l1.weight, l1.bias)), l2.weight, l2.bias)
        )

    def forward_with(self, weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """As ``functional_call``, without its per-call swapping of module attributes, which
        costs more than the arithmetic at this size (the look-ahead calls it 4 times a step)."""
        w = weights
        h = F.relu(F.linear(x.flatten(1), w["features.1.weight"], w["features.1.bias"]))
        h = F.relu(F.linear(h, w["features.3.weight"], w["features.3.bias"]))
        return F.linear(h, w["head.weight"], w["head.bias"])

    @torch.no_grad()
    def forward_vjp(self, weights, x) -> Pass:
        """As ``Backbone.forward_vjp``, with the backward pass written out: three matrix
        products and two ReLU masks, about half the time of autograd's at batch 20."""
        w1, b1, w2, b2, w3, b3 = weights
        x = x.flatten(1)
        h1 = torch.addmm(b1, x, w1.t()).clamp_(min=0)
        h2 = torch.addmm(b2, h1, w2.t()).clamp_(min=0)
        logits = torch.addmm(b3, h2, w3.t())

        def vjp(g: torch.Tensor, out=None) -> list[torch.Tensor]:
            with torch.no_grad():  # ReLU's backward as one kernel, not a compare and a product
                g2 = _relu_backward(g @ w3, h2, 0)
                g1 = _relu_backward(g2 @ w2, h1, 0)
                if out is None:
                    return [g1.t() @ x, g1.sum(0), g2.t() @ h1, g2.sum(0), g.t() @ h2, g.sum(0)]
                gw1, gb1, gw2, gb2, gw3, gb3 = out  # e.g. views of one flat buffer
                torch.mm(g1.t(), x, out=gw1)
                torch.sum(g1, 0, out=gb1)
                torch.mm(g2.t(), h1, out=gw2)
                torch.sum(g2, 0, out=gb2)
                torch.mm(g.t(), h2, out=gw3)
                torch.sum(g, 0, out=gb3)
                return out

        return Pass(logits, vjp, h2)


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


BUILT_IN = ("auto", "mlp", "cnn", "reduced-resnet18", "resnet18")
RESNET_WIDTH = {"reduced-resnet18": 20, "resnet18": 64}


def model_kind(kind: str, input_shape: tuple[int, ...]) -> str:
    """``auto`` picks the CNN for colour images and the MLP otherwise."""
    if kind == "auto":
        return "cnn" if len(input_shape) == 3 and input_shape[0] == 3 else "mlp"
    return kind


def embedding_dim(kind: str, input_shape: tuple[int, ...], hidden: int) -> int | None:
    """The width of a built-in backbone's embedding (its memories' key size), known before
    it is built; None for a user's model (its memories get fixed keys)."""
    kind = model_kind(kind, input_shape)
    if kind == "mlp":
        return hidden
    if kind == "cnn":
        return max(hidden, 64)
    if kind in RESNET_WIDTH:
        return 8 * RESNET_WIDTH[kind]
    return None


def build_model(kind: str, input_shape: tuple[int, ...], n_classes: int, hidden: int) -> nn.Module:
    """A built-in backbone by name, or ``package.module:factory`` called with the input
    shape and the number of classes (any ``nn.Module`` mapping inputs to logits)."""
    kind = model_kind(kind, input_shape)
    if kind == "mlp":
        return MLP(input_shape, n_classes, hidden)
    if kind == "cnn":
        return SmallCNN(input_shape, n_classes, max(hidden, 64))
    if kind in RESNET_WIDTH:
        return ResNet18(input_shape, n_classes, RESNET_WIDTH[kind])
    return _from_factory(kind, input_shape, n_classes)


def _from_factory(name: str, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:

    factory = user_code.load(name, "model factory", BUILT_IN)
    model = factory(tuple(input_shape), n_classes)
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"model factory {name!r} returned {type(model).__name__}, not an nn.Module"
        )
    return model
