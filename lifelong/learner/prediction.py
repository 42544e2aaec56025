"""How the agent predicts: the learned controller's mix of the head and the memory's class
prototypes, the head alone, or MbPA++'s local adaptation; in eval mode, in chunks, on the
learner's device, with the answers brought back to the host once."""

from __future__ import annotations

import torch

from lifelong.learner import gate
from lifelong.learner.adaptation import adapted_logits
from lifelong.learner.losses import mask_to

CHUNK = 500  # examples a forward pass


def predict(agent, x: torch.Tensor, task_id: int | None, adapt: bool) -> torch.Tensor:
    """Class predictions of ``x`` by the agent's current weights (the caller swaps in the
    ones that predict)."""
    model = agent.model
    model.eval()
    protos = prototypes_now(agent) if agent.gate is not None and not adapt else None
    out = []
    for xb in x.split(CHUNK):
        xb = xb.to(agent.device, non_blocking=True)
        if adapt and len(agent.memory):
            agent.flush_memory()
            logits = adapted_logits(model, agent.store, xb, agent.keys(xb), agent.cfg)
        else:
            with torch.no_grad():
                f = model.embed(xb) if protos is not None else None
                logits = (
                    model(xb)
                    if f is None
                    else gate.mixed_logits(agent.gate.weights, f, model.head(f), protos)
                )
        if agent._masked(task_id):
            logits = mask_to(logits, agent.masks.row(task_id))
        out.append(logits.argmax(1))
    model.train()
    return torch.cat(out).cpu() if out else torch.empty(0, dtype=torch.int64)


@torch.no_grad()
def prototypes_now(agent) -> torch.Tensor | None:
    """Prototypes at the current weights, for predicting (the model is in eval mode); never
    part of what the agent learns. Kept until the next step (weights and memories change
    only in a step or at an experience's end): a served learner answering a run of batches
    it is too busy to learn embeds its memory once, not once a batch (500 rows each)."""
    n = len(agent.memory)
    if not n:
        return None
    key = (agent.steps, n, agent.average is not None and agent.average.in_model)  # which weights
    if agent.prototype_cache is not None and agent.prototype_cache[0] == key:
        return agent.prototype_cache[1]
    memory = agent.memory
    protos = gate.prototypes(agent.model.embed(memory.x[:n]), memory.y[:n], agent.spec.n_classes)
    agent.prototype_cache = (key, protos)
    return protos


def prediction_state(agent) -> dict:
    """What predicting needs beside the weights: the controller's mixing weights and the
    prototypes at the current weights (for a served snapshot), on the host."""
    if agent.gate is None:
        return {}
    agent.model.eval()
    protos = prototypes_now(agent)
    agent.model.train()
    if protos is None:
        return {}
    return {"weights": agent.gate.weights.cpu().clone(), "prototypes": protos.cpu()}
