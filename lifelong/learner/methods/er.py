"""Experience replay (Chaudhry et al. 2019): cross-entropy on the incoming batch plus a
replayed one, one clipped SGD step.

Autograd is the plain path and works for any ``nn.Module``. Backbones with ``forward_vjp``
(this package's MLP and CNN) take the closed-form path instead: the loss's gradient with
respect to the logits written out and the backbone's vector-Jacobian product, the same
numbers without an autograd graph, which at a batch of 20 costs more than the arithmetic.
tests/test_methods.py checks the two paths agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lifelong.learner.backbone import Backbone, flat_view
from lifelong.learner.learned_rates import clip_
from lifelong.learner.losses import ReplayLoss
from lifelong.learner.methods.base import Method, Step, Update


@dataclass
class ERSettings:
    lr: float = 0.1  # SGD step size
    grad_clip: float = 2.0  # clip the gradient's norm to this (0: off)
    closed_form: bool = True  # the fast path where the backbone offers it


class ER(Method):
    Settings = ERSettings
    logits_before_update = True  # one forward of incoming + replay, then the step
    forward_in_step = True  # ... whose embeddings and logits the controller learns from

    def __init__(self, model, settings, scenario: str = "class") -> None:
        super().__init__(model, settings, scenario)
        # where the weights lie in one buffer (the agent lays them out so), the gradient
        # does too: clip and step are then one operation each over every weight
        self.flat = flat_view(self.weights)
        self.grad_flat = None if self.flat is None else torch.empty_like(self.flat)
        self.grads = None
        if self.grad_flat is not None:
            sizes = [w.numel() for w in self.weights]
            views = self.grad_flat.split(sizes)
            self.grads = [v.view_as(w) for v, w in zip(views, self.weights, strict=True)]

    @property
    def capturable(self) -> bool:
        """On a GPU the closed form of a backbone that writes its backward out (the MLP) is
        captured as a CUDA graph. A step through autograd (the CNN, the ResNets, any other
        module) runs op by op: capturing it failed on torch 2.11 on an H200 for one update
        a batch (docs/benchmarks.md), and a failed capture leaves CUDA's default generator
        unusable, so it is not tried."""
        own = getattr(type(self.model), "forward_vjp", None)
        return self.settings.closed_form and own not in (None, Backbone.forward_vjp)

    def update(self, batch: Update) -> Step:
        if self.settings.closed_form and hasattr(self.model, "forward_vjp"):
            return self._closed_form_step(self.loss(batch), batch)
        return self._autograd_step(self.loss(batch), batch)

    def _autograd_step(self, loss_of: ReplayLoss, b: Update) -> Step:
        n_in = len(b.y)
        x = b.x if b.x_mem is None else torch.cat([b.x, b.x_mem])
        bf16 = getattr(self.model, "bf16", False)
        # one pass: batch norm sees incoming and replayed together
        with torch.enable_grad(), torch.autocast(x.device.type, torch.bfloat16, bf16):
            features = self.model.embed(x) if hasattr(self.model, "embed") else None
            logits = self.model(x) if features is None else self.model.head(features)
            logits = logits.float()
            logits_mem = logits[n_in:] if b.x_mem is not None else None
            loss = loss_of(logits[:n_in], b.y, logits_mem, b.y_mem)
            grads = torch.autograd.grad(loss, self.weights)
        self._sgd(list(grads))
        logits = logits.detach()
        features = None if features is None else features.detach().float()
        return Step(loss.detach(), logits[:n_in], features, logits)

    @torch.no_grad()
    def _closed_form_step(self, loss_of: ReplayLoss, b: Update) -> Step:
        x, y, n_in = b.x, b.y, len(b.y)
        if b.x_mem is not None:
            x, y = torch.cat([x, b.x_mem]), torch.cat([y, b.y_mem])
        forward = self.model.forward_vjp(self.weights, x)
        loss, grad_logits = loss_of.with_grad(forward.logits, y, n_in)
        self._sgd(forward.vjp(grad_logits, out=self.grads))
        return Step(loss, forward.logits[:n_in], forward.features, forward.logits)

    @torch.no_grad()
    def _sgd(self, grads: list[torch.Tensor]) -> None:
        """Clip the gradient's norm to ``grad_clip`` and step; the clip's factor stays a
        tensor (reading it on the host would wait for the device)."""
        lr, clip = self.settings.lr, self.settings.grad_clip
        if grads is not self.grads:  # the gradient is not in the flat buffer
            clip_(grads, clip)
            torch._foreach_add_(self.weights, grads, alpha=-lr)
        elif clip > 0:
            scale = (clip / (self.grad_flat.norm() + 1e-12)).clamp_(max=1.0)
            self.flat.addcmul_(self.grad_flat, scale, value=-lr)
        else:
            self.flat.add_(self.grad_flat, alpha=-lr)
