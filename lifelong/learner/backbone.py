"""The backbone protocol: a network with ``features`` (the embedding that keys memories) and
a linear ``head``, and the two calls the learning steps make with weights other than the
module's own: ``forward_with`` (look-ahead steps) and ``forward_vjp`` (logits, the map from
dloss/dlogits to each weight's gradient, and the embedding on the way). Any ``nn.Module``
gets both through ``torch.func.functional_call`` and autograd; this package's backbones write
their own."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import nn
from torch.func import functional_call


class Pass(NamedTuple):
    """One forward pass a learning step differentiates: the logits, the map from dloss/dlogits
    to each weight's gradient (``vjp(grad_logits, out=None)``: into ``out``'s tensors when
    given), and the embedding the logits came from (None where the model has none), which
    the prediction controller learns from instead of a forward of its own."""

    logits: torch.Tensor
    vjp: Callable[..., list[torch.Tensor]]
    features: torch.Tensor | None = None


class Backbone(nn.Module):
    """``features`` (the embedding that keys memories) followed by a linear ``head``."""

    features: nn.Module
    head: nn.Linear
    bf16 = False  # autocast the autograd forward pass to bf16 (on CUDA; the agent sets it)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor, task_labels=None) -> torch.Tensor:
        return self.head(self.features(x))

    def forward_with(self, weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """The forward pass with other weights (the controller's look-ahead)."""
        return functional_call(self, weights, (x,))

    def forward_vjp(self, weights: Sequence[torch.Tensor], x: torch.Tensor) -> Pass:
        """Logits with ``weights`` (in ``parameters()`` order), and the map from dloss/dlogits
        to each weight's gradient. The learning steps use it with a loss whose gradient
        they know in closed form (``losses.ReplayLoss.with_grad``); here, autograd does the
        backbone's part: through the module as it is when ``weights`` are its own (a plain
        update), else through ``functional_call`` (a look-ahead)."""
        own = list(self.parameters())
        if len(weights) != len(own) or any(w is not p for w, p in zip(weights, own)):
            return generic_forward_vjp(self, weights, x)
        with torch.enable_grad(), torch.autocast(x.device.type, torch.bfloat16, self.bf16):
            features = self.embed(x)
            logits = self.head(features).float()

        def vjp(grad_logits: torch.Tensor, out=None) -> list[torch.Tensor]:
            return _into(torch.autograd.grad(logits, own, grad_logits), out)

        return Pass(logits.detach(), vjp, features.detach().float())


def flatten_parameters(model: nn.Module) -> torch.Tensor:
    """Lay ``model``'s parameters out one after another in a single buffer (each parameter a
    view of it) and return the buffer. An update, a clip or an average then touches every
    weight with one operation instead of one per tensor, which at a batch of 10 on a CPU is
    where a step's time goes. Call it once the model is on its device."""
    params = list(model.parameters())
    with torch.no_grad():
        flat = torch.cat([p.detach().reshape(-1) for p in params])
        start = 0
        for p in params:
            p.data = flat[start : start + p.numel()].view_as(p)
            start += p.numel()
    return flat


def flat_view(tensors: Sequence[torch.Tensor]) -> torch.Tensor | None:
    """One 1-D view over ``tensors`` where they lie one after another in one buffer (as
    ``flatten_parameters`` lays them), else None."""
    if not tensors:
        return None
    first = tensors[0]
    start = end = first.storage_offset()
    for t in tensors:
        if (
            t.dtype != first.dtype
            or not t.is_contiguous()
            or t.untyped_storage().data_ptr() != first.untyped_storage().data_ptr()
            or t.storage_offset() != end
        ):
            return None
        end += t.numel()
    return first.as_strided((end - start,), (1,), start)


def forward_with(model: nn.Module, weights: dict[str, torch.Tensor], x: torch.Tensor):
    """``model``'s forward pass with other weights: its own fast one if it has it."""
    if hasattr(model, "forward_with"):
        return model.forward_with(weights, x)
    return functional_call(model, weights, (x,))


def forward_vjp(model: nn.Module, weights: Sequence[torch.Tensor], x: torch.Tensor) -> Pass:
    """``Backbone.forward_vjp`` for any module: its own if it has one."""
    if hasattr(model, "forward_vjp"):
        return model.forward_vjp(weights, x)
    return generic_forward_vjp(model, weights, x)


def generic_forward_vjp(model: nn.Module, weights: Sequence[torch.Tensor], x: torch.Tensor) -> Pass:
    """Autograd's vector-Jacobian product of any module's logits in its weights."""
    names = [n for n, _ in model.named_parameters()]
    leaves = [w.detach().requires_grad_() for w in weights]
    with torch.enable_grad():
        logits = forward_with(model, dict(zip(names, leaves, strict=True)), x)

    def vjp(grad_logits: torch.Tensor, out=None) -> list[torch.Tensor]:
        return _into(torch.autograd.grad(logits, leaves, grad_logits), out)

    return Pass(logits.detach(), vjp)


def _into(grads, out) -> list[torch.Tensor]:
    """Autograd's gradients, copied into ``out`` when given."""
    if out is None:
        return list(grads)
    torch._foreach_copy_(out, list(grads))
    return out
