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

    ``loss_fn(logits_in, y_in, logits_mem, y_mem)`` is the replay loss; the look-ahead steps
    use it on their chunk of the incoming batch alone. ``grad_clip`` bounds the look-ahead
    steps as well as the meta-gradients. ``model`` must offer ``forward_with(weights, x)``
    (every ``lifelong.models`` backbone does).
    """
    batch = (model, rates, loss_fn, x_in, y_in, x_mem, y_mem, inner_steps, grad_clip)
    if second_order:
        meta, w_grads, a_grads = meta_grads_autograd(*batch, create_graph=True)
    else:
        meta, w_grads, a_grads = meta_grads_first_order(*batch)
    _clip_(w_grads, grad_clip)
    _clip_(a_grads, grad_clip)
    with torch.no_grad():
        for a, g in zip(rates.rates, a_grads):
            a.sub_(rate_lr * g)
        for w, a, g in zip(model.parameters(), rates.applied(), w_grads):
            w.sub_(a * g)
    return meta


def _look_ahead_chunks(x_in, y_in, inner_steps: int):
    return [
        (xc, yc)
        for xc, yc in zip(x_in.tensor_split(inner_steps), y_in.tensor_split(inner_steps))
        if len(yc)
    ]


def meta_grads_first_order(
    model, rates, loss_fn, x_in, y_in, x_mem, y_mem, inner_steps: int, grad_clip: float
):
    """First-order meta-gradients in closed form, from plain backward passes.

    With the look-ahead gradients g_i treated as constants, the weights after k steps are
    w - relu(a) * G_k (G_k = g_1 + ... + g_k), so the k-th meta-loss m_k has
    dm_k/dw = dm_k/dw_k and dm_k/da = -G_k * dm_k/dw_k * [a > 0]. That is the same gradient
    autograd gives through the rates, at about half the cost (no graph through them).
    """
    names = rates.names
    applied = [a.detach().clamp(min=0) for a in rates.rates]
    x_meta = torch.cat([x_in, x_mem]) if x_mem is not None else x_in
    n_in = len(y_in)
    fast = [p.detach() for p in model.parameters()]
    cum = w_grads = a_grads = None  # G_k, sum of dm_k/dw_k, sum of -G_k * dm_k/dw_k
    meta_losses = []
    for xc, yc in _look_ahead_chunks(x_in, y_in, inner_steps):
        fast = [w.requires_grad_() for w in fast]
        inner = loss_fn(model.forward_with(dict(zip(names, fast)), xc), yc, None, None)
        grads = _clipped(torch.autograd.grad(inner, fast), grad_clip)
        with torch.no_grad():
            fast = [torch.addcmul(w, a, g, value=-1) for w, a, g in zip(fast, applied, grads)]
            cum = list(grads) if cum is None else [c + g for c, g in zip(cum, grads)]
        fast = [w.requires_grad_() for w in fast]
        logits = model.forward_with(dict(zip(names, fast)), x_meta)
        meta = loss_fn(logits[:n_in], y_in, logits[n_in:], y_mem)
        grads = torch.autograd.grad(meta, fast)
        with torch.no_grad():
            if w_grads is None:
                w_grads, a_grads = list(grads), [-c * g for c, g in zip(cum, grads)]
            else:
                for wg, ag, c, g in zip(w_grads, a_grads, cum, grads):
                    wg.add_(g)
                    ag.addcmul_(c, g, value=-1)
        meta_losses.append(meta.detach())
    k = len(meta_losses)
    with torch.no_grad():
        for wg, ag, a in zip(w_grads, a_grads, rates.rates):
            wg.div_(k)
            ag.mul_((a > 0) / k)
    return torch.stack(meta_losses).mean(), w_grads, a_grads


def meta_grads_autograd(
    model,
    rates,
    loss_fn,
    x_in,
    y_in,
    x_mem,
    y_mem,
    inner_steps: int,
    grad_clip: float,
    *,
    create_graph: bool,
):
    """Meta-gradients by autograd through the rates; with ``create_graph`` (second order) also
    through the look-ahead gradients."""
    weights = list(model.parameters())
    fast = dict(zip(rates.names, weights))
    x_meta = torch.cat([x_in, x_mem]) if x_mem is not None else x_in
    n_in = len(y_in)
    meta_losses = []
    for xc, yc in _look_ahead_chunks(x_in, y_in, inner_steps):
        inner = loss_fn(model.forward_with(fast, xc), yc, None, None)
        grads = torch.autograd.grad(inner, list(fast.values()), create_graph=create_graph)
        grads = _clipped(grads, grad_clip)
        # the rates stay in the graph even first-order: that is what their gradient flows through
        fast = {n: w - a * g for (n, w), a, g in zip(fast.items(), rates.applied(), grads)}
        logits = model.forward_with(fast, x_meta)
        meta_losses.append(loss_fn(logits[:n_in], y_in, logits[n_in:], y_mem))
    meta = torch.stack(meta_losses).mean()
    grads = torch.autograd.grad(meta, weights + list(rates.rates))
    return meta.detach(), list(grads[: len(weights)]), list(grads[len(weights) :])


def _clipped(grads, max_norm: float) -> list[torch.Tensor]:
    """Look-ahead gradients scaled to joint norm at most max_norm (out of place, so autograd
    can differentiate through it). Unclipped, one large look-ahead step on a batch of new
    classes can throw the meta-loss, and then the rates, off to infinity."""
    if max_norm <= 0:
        return list(grads)
    total = torch.nn.utils.get_total_norm(grads).detach()
    scale = torch.clamp(max_norm / (total + 1e-12), max=1.0)
    return [g * scale for g in grads]


def _clip_(grads, max_norm: float) -> None:
    """Scale grads in place so their joint L2 norm is at most max_norm."""
    if max_norm <= 0:
        return
    total = torch.nn.utils.get_total_norm(grads)
    if total > max_norm:
        scale = max_norm / (total + 1e-12)
        for g in grads:
            g.mul_(scale)
