"""Published weights: what predictions and memory searches use while the agent learns.

The learner hands over a frozen copy of its network every few steps and at experience ends;
the copy is swapped in as one reference assignment, so a prediction never waits for a
training step and never sees a half-updated network.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from lifelong.adaptation import adapted_logits


@dataclass(frozen=True)
class Snapshot:
    model: torch.nn.Module  # an eval-mode copy, never trained again
    projection: torch.Tensor | None  # fixed keys: the agent's random projection
    step: int
    examples: int
    experience: int
    published_at: float

    @classmethod
    def of(cls, agent, experience: int, now: float) -> Snapshot:
        model = copy.deepcopy(agent.model).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        projection = agent.projection if agent.fixed_keys else None
        return cls(model, projection, agent.steps, agent.examples, experience, now)

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
