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

from lifelong.learner import agent_average
from lifelong.learner.adaptation import adapted_logits
from lifelong.learner.gate import mixed_logits
from lifelong.learner.models import build_model


def published_state(agent, experience: int) -> dict:
    """What the learner publishes of its agent (``weights.pt``): plain tensors, loadable
    with ``weights_only``: the weights, the fixed keys' projection, and the prediction
    controller's weights and prototypes, so a snapshot predicts as the agent does."""
    with agent_average.predicting_weights(agent):  # the weight average, where it predicts
        return {
            "model": {
                k: v.detach().to("cpu", copy=True) for k, v in agent.model.state_dict().items()
            },
            "projection": agent.projection.cpu() if agent.fixed_keys else None,
            "input_shape": torch.tensor(agent.spec.input_shape),
            "step": torch.tensor(agent.steps),
            "experience": torch.tensor(experience),
            "prediction": agent.prediction_state(),
        }


@dataclass(frozen=True)
class Snapshot:
    model: torch.nn.Module  # an eval-mode copy, never trained again
    projection: torch.Tensor | None  # fixed keys: the agent's random projection
    step: int
    experience: int
    published_at: float
    prediction: dict  # the prediction controller's weights and prototypes (none: the head)

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
        prediction = state.get("prediction") or {}
        return cls(model, state["projection"], step, experience, published_at, prediction)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Labels and class probabilities, as the agent predicts them (with its controller's
        mix of head and prototypes where it has one)."""
        if self.prediction:
            f = self.model.embed(x)
            p = self.prediction
            logits = mixed_logits(p["weights"], f, self.model.head(f), p["prototypes"])
        else:
            logits = self.model(x)
        probs = torch.softmax(logits, dim=1)
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
