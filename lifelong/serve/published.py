"""Published weights: what predictions and memory searches use while the agent learns.

The learner (another process) writes its network's tensors every few steps and at
experience ends; the server loads them into a network of its own and swaps it in as one
reference assignment, so a prediction never waits for a training step and never sees a
half-updated network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lifelong.adaptation import adapted_logits
from lifelong.models import build_model


@dataclass(frozen=True)
class Snapshot:
    model: torch.nn.Module  # an eval-mode copy, never trained again
    projection: torch.Tensor | None  # fixed keys: the agent's random projection
    step: int
    experience: int
    published_at: float

    @classmethod
    def load(cls, path: Path, cfg, published_at: float) -> Snapshot:
        """The learner's last ``weights.pt`` in a network built as the learner built its
        own (``weights_only``: tensors, never pickled code)."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        shape = tuple(int(v) for v in state["input_shape"])
        model = build_model(cfg.model, shape, cfg.n_classes, cfg.hidden)
        model.load_state_dict(state["model"])
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        step, experience = int(state["step"]), int(state["experience"])
        return cls(model, state["projection"], step, experience, published_at)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Labels and class probabilities."""
        probs = torch.softmax(self.model(x), dim=1)
        return probs.argmax(1).numpy(), probs.numpy()

    def adapted(self, x: torch.Tensor, store, cfg) -> tuple[np.ndarray, np.ndarray]:
        """Labels and probabilities by weights briefly tuned on each example's nearest
        memories (MbPA++), then thrown away; the published copy is not changed."""
        logits = adapted_logits(self.model, store, x, self.keys(x), cfg)
        probs = torch.softmax(logits, dim=1)
        return probs.argmax(1).numpy(), probs.numpy()

    @torch.no_grad()
    def keys(self, x: torch.Tensor) -> np.ndarray:
        """Memory keys of examples, as the agent computes them."""
        if self.projection is not None:
            return (x.reshape(len(x), -1) @ self.projection).numpy()
        return self.model.embed(x).numpy()
