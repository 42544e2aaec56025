"""ResNet-18 backbones for image streams, as the continual-learning field uses them.

``reduced-resnet18`` (nf = 20) is the backbone of GEM, ER, MIR and the online continual
learning survey (Mai et al. 2021); ``resnet18`` (nf = 64) the one of DER and Mammoth. Both
are the CIFAR variant: a 3x3 stem without max-pooling, four stages of two basic blocks
(strides 1, 2, 2, 2), global average pooling, then the linear head. Batch norm everywhere:
the agent feeds incoming and replayed examples through one forward pass (one set of batch
statistics) and predicts in eval mode.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lifelong.learner.backbone import Backbone


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(Backbone):
    """ResNet-18 with ``nf`` filters in its first stage (20: reduced, 64: full)."""

    def __init__(self, input_shape: tuple[int, ...], n_classes: int, nf: int = 20) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"ResNet-18 needs (channels, height, width) inputs, got {input_shape}")
        layers: list[nn.Module] = [
            nn.Conv2d(input_shape[0], nf, 3, 1, 1, bias=False),
            nn.BatchNorm2d(nf),
            nn.ReLU(),
        ]
        c = nf
        for i, stride in enumerate((1, 2, 2, 2)):
            width = nf * 2**i
            layers += [BasicBlock(c, width, stride), BasicBlock(width, width, 1)]
            c = width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c, n_classes)
        self.embedding_dim = c
