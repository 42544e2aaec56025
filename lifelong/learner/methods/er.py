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

from lifelong.learner.controller import clip_factor
from lifelong.learner.losses import ReplayLoss
from lifelong.learner.methods.base import Method, Update


@dataclass
class ERSettings:
    lr: float = 0.1  # SGD step size
    grad_clip: float = 2.0  # clip the gradient's norm to this (0: off)
    closed_form: bool = True  # the fast path where the backbone offers it


class ER(Method):
    Settings = ERSettings
    logits_before_update = True  # one forward of incoming + replay, then the step

    def update(self, batch: Update) -> tuple[torch.Tensor, torch.Tensor]:
        if self.settings.closed_form and hasattr(self.model, "forward_vjp"):
            return self._closed_form_step(self.loss(batch), batch)
        return self._autograd_step(self.loss(batch), batch)

    def _autograd_step(self, loss_of: ReplayLoss, b: Update):
        n_in = len(b.y)
        x = b.x if b.x_mem is None else torch.cat([b.x, b.x_mem])
        with torch.enable_grad():  # one pass: batch norm sees incoming and replayed together
            logits = self.model(x)
            logits_mem = logits[n_in:] if b.x_mem is not None else None
            loss = loss_of(logits[:n_in], b.y, logits_mem, b.y_mem)
            grads = torch.autograd.grad(loss, self.weights)
        self._sgd(list(grads))
        return loss.detach(), logits[:n_in].detach()

    @torch.no_grad()
    def _closed_form_step(self, loss_of: ReplayLoss, b: Update):
        x, y, n_in = b.x, b.y, len(b.y)
        if b.x_mem is not None:
            x, y = torch.cat([x, b.x_mem]), torch.cat([y, b.y_mem])
        logits, vjp = self.model.forward_vjp(self.weights, x)
        loss, grad_logits = loss_of.with_grad(logits, y, n_in)
        self._sgd(vjp(grad_logits))
        return loss, logits[:n_in]

    @torch.no_grad()
    def _sgd(self, grads: list[torch.Tensor]) -> None:
        lr = self.settings.lr * clip_factor(grads, self.settings.grad_clip)  # clip in the step
        torch._foreach_add_(self.weights, grads, alpha=-lr)
