"""A user's method with a setting of its own (what the README's "Write your own method" shows),
for the tests that a user method is first-class: configs, sweeps, compare."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lifelong.learner.methods import Method, Update


@dataclass
class SmoothSettings:
    lr: float = 0.1  # taken from the run's lr
    smoothing: float = 0.1  # this method's own


class Smooth(Method):
    """Replay with label smoothing: one SGD step on incoming and replayed examples."""

    Settings = SmoothSettings

    def update(self, b: Update):
        x = b.x if b.x_mem is None else torch.cat([b.x, b.x_mem])
        y = b.y if b.y_mem is None else torch.cat([b.y, b.y_mem])
        with torch.enable_grad():
            logits = self.model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=self.settings.smoothing)
            grads = torch.autograd.grad(loss, self.weights)
        with torch.no_grad():
            torch._foreach_add_(self.weights, grads, alpha=-self.settings.lr)
        return loss.detach(), logits[: len(b.y)].detach()
