"""The learned controller: La-MAML (Gupta, Yadav & Paull, NeurIPS 2020), as one function.

The agent keeps a learning rate for every weight. For an incoming batch it takes look-ahead
steps with those rates (functionally: no module copies), scores the looked-ahead weights on
the incoming batch plus replayed memories, and moves both the rates and the weights down
that meta-loss's gradient. Rates whose look-ahead hurt old tasks shrink; the rest grow.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call


class LearnedRates(nn.Module):
    """One learnable rate per weight entry; applied clipped at zero (relu)."""

    def __init__(self, model: nn.Module, init: float) -> None:
        super().__init__()
        self.names = [n for n, _ in model.named_parameters()]
        self.rates = nn.ParameterList(
            nn.Parameter(torch.full_like(p, init)) for _, p in model.named_parameters()
        )

    def applied(self) -> list[torch.Tensor]:
        return [F.relu(a) for a in self.rates]


def lamaml_step(
    model: nn.Module,
    rates: LearnedRates,
    loss_fn,
    x_in,
    y_in,
    x_mem,
    y_mem,
    *,
    inner_steps: int,
    second_order: bool,
    rate_lr: float,
    grad_clip: float,
):
    """One meta-update on an incoming batch; returns the meta-loss.

    ``loss_fn(logits_in, y_in, logits_mem, y_mem)`` is the replay loss (ER-ACE by default);
    the look-ahead steps use it on their chunk of the incoming batch alone.
    """
    names = rates.names
    weights = [p for _, p in model.named_parameters()]
    fast = dict(zip(names, weights))
    chunks = zip(x_in.tensor_split(inner_steps), y_in.tensor_split(inner_steps))
    x_meta = torch.cat([x_in, x_mem]) if x_mem is not None else x_in
    n_in = len(y_in)
    meta_losses = []
    for xc, yc in chunks:
        if len(yc) == 0:
            continue
        inner = loss_fn(functional_call(model, fast, (xc,)), yc, None, None)
        grads = torch.autograd.grad(inner, list(fast.values()), create_graph=second_order)
        # the rates stay in the graph even first-order: that is what their gradient flows through
        fast = {n: w - a * g for (n, w), a, g in zip(fast.items(), rates.applied(), grads)}
        logits = functional_call(model, fast, (x_meta,))
        meta_losses.append(loss_fn(logits[:n_in], y_in, logits[n_in:], y_mem))
    meta = torch.stack(meta_losses).mean()
    params = weights + list(rates.rates)
    grads = torch.autograd.grad(meta, params)
    w_grads, a_grads = grads[: len(weights)], grads[len(weights) :]
    _clip_(w_grads, grad_clip)
    _clip_(a_grads, grad_clip)
    with torch.no_grad():
        for a, g in zip(rates.rates, a_grads):
            a.sub_(rate_lr * g)
        for w, a, g in zip(weights, rates.applied(), w_grads):
            w.sub_(a * g)
    return meta.detach()


def _clip_(grads, max_norm: float) -> None:
    """Scale grads in place so their joint L2 norm is at most max_norm."""
    if max_norm <= 0:
        return
    total = torch.sqrt(sum((g * g).sum() for g in grads))
    if total > max_norm:
        for g in grads:
            g.mul_(max_norm / (total + 1e-12))
