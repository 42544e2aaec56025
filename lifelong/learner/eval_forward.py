"""``EvalForward``: the forward passes outside the updates (memories' keys, logits and
losses, the online measure of a method whose update does not give it, the weight average's
watch), in eval mode where batch norm or dropout make the mode matter."""

from __future__ import annotations

import contextlib

import torch


class EvalForward:
    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.mode_matters = any(
            isinstance(m, (torch.nn.Dropout, torch.nn.modules.batchnorm._BatchNorm))
            for m in model.modules()
        )

    @contextlib.contextmanager
    def mode(self):
        """Eval mode where it matters, so these passes neither use nor move the batch
        statistics; otherwise no mode round trip (``train()`` walks every module)."""
        if not self.mode_matters:
            yield
            return
        was_training = self.model.training
        self.model.eval()
        try:
            yield
        finally:
            self.model.train(was_training)

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        with self.mode():
            return self.model(x)

    @torch.no_grad()
    def embed_and_head(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The embedding and the head's logits, from one forward pass."""
        with self.mode():
            embeddings = self.model.embed(x)
            return embeddings, self.model.head(embeddings)
