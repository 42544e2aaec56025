"""The backbone protocol: a network with ``features`` (the embedding that keys memories) and
a linear ``head``, and the two calls the learning steps make with weights other than the
module's own: ``forward_with`` (look-ahead steps) and ``forward_vjp`` (logits and the map from
dloss/dlogits to each weight's gradient). Any ``nn.Module`` gets both through
``torch.func.functional_call`` and autograd; this package's backbones write their own."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
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

    def forward_vjp(
        self, weights: Sequence[torch.Tensor], x: torch.Tensor
    ) -> tuple[torch.Tensor, Callable[[torch.Tensor], list[torch.Tensor]]]:
        """Logits with ``weights`` (in ``parameters()`` order), and the map from dloss/dlogits
        to each weight's gradient. The learning steps use it with a loss whose gradient
        they know in closed form (``losses.ReplayLoss.with_grad``); here, autograd does the
        backbone's part."""
        return generic_forward_vjp(self, weights, x)


def forward_with(model: nn.Module, weights: dict[str, torch.Tensor], x: torch.Tensor):
    """``model``'s forward pass with other weights: its own fast one if it has it."""
    if hasattr(model, "forward_with"):
        return model.forward_with(weights, x)
    return functional_call(model, weights, (x,))


def forward_vjp(model: nn.Module, weights: Sequence[torch.Tensor], x: torch.Tensor):
    """(logits, vjp) as ``Backbone.forward_vjp``, for any module: its own if it has one."""
    if hasattr(model, "forward_vjp"):
        return model.forward_vjp(weights, x)
    return generic_forward_vjp(model, weights, x)


def generic_forward_vjp(model: nn.Module, weights: Sequence[torch.Tensor], x: torch.Tensor):
    """Autograd's vector-Jacobian product of any module's logits in its weights."""
    names = [n for n, _ in model.named_parameters()]
    leaves = [w.detach().requires_grad_() for w in weights]
    with torch.enable_grad():
        logits = forward_with(model, dict(zip(names, leaves, strict=True)), x)

    def vjp(grad_logits: torch.Tensor) -> list[torch.Tensor]:
        return list(torch.autograd.grad(logits, leaves, grad_logits))

    return logits.detach(), vjp
