"""La-MAML's learned per-weight learning rates (Gupta, Yadav & Paull, NeurIPS 2020).

The agent keeps a learning rate for every weight. For an incoming batch it takes look-ahead
steps with those rates (functionally: no module copies), scores the looked-ahead weights on
the incoming batch plus replayed memories, and moves both the rates and the weights down
that meta-loss's gradient. Rates whose look-ahead hurt old tasks shrink; the rest grow.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lifelong.learner.backbone import Backbone, forward_vjp, forward_with
from lifelong.learner.losses import ReplayLoss


class LearnedRates(nn.Module):
    """One learnable rate per weight entry; applied clipped at zero (relu)."""

    def __init__(self, model: nn.Module, init: float) -> None:
        super().__init__()
        self.names = [n for n, _ in model.named_parameters()]
        self.rates = nn.ParameterList(
            nn.Parameter(torch.full_like(p, init)) for _, p in model.named_parameters()
        )
        # plain lists of the same tensors: walking a module or ParameterList every step costs
        # more than some of the arithmetic
        self.weights = list(model.parameters())
        self.tensors = list(self.rates)
        self._applied: tuple[list[int], list[torch.Tensor]] = ([], [])

    def applied(self) -> list[torch.Tensor]:
        """The rates clipped at zero. Kept until a rate tensor changes (its version counter
        moves on any in-place write): a step's weight update and the next step's look-ahead
        use the same rates, so one clip serves both."""
        versions = [t._version for t in self.tensors]
        if versions != self._applied[0]:
            self._applied = (versions, list(torch._foreach_clamp_min(self.tensors, 0.0)))
        return self._applied[1]


def lamaml_step(
    model: Backbone,
    rates: LearnedRates,
    loss: ReplayLoss,
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
    """One meta-update on an incoming batch; returns the meta-loss and the incoming examples'
    logits at the looked-ahead weights (what memories of them keep, as DER would).

    ``loss`` is the step's replay loss; the look-ahead steps use it on their chunk of the
    incoming batch alone. ``grad_clip`` bounds the look-ahead steps as well as the
    meta-gradients.
    """
    batch = (model, rates, loss, x_in, y_in, x_mem, y_mem, inner_steps, grad_clip)
    if second_order:
        meta, w_grads, a_grads, logits_in = meta_grads_autograd(*batch, create_graph=True)
        w_scale = a_scale = 1.0
    else:  # sums over the look-ahead steps: their mean and sign go into the update's scalars
        meta, w_grads, a_grads, logits_in, k = _meta_grad_sums(*batch)
        w_scale, a_scale = 1.0 / k, -1.0 / k
    with torch.no_grad():
        clip_(w_grads, grad_clip, abs(w_scale))
        clip_(a_grads, grad_clip, abs(a_scale))
        torch._foreach_add_(rates.tensors, a_grads, alpha=-rate_lr * a_scale)
        torch._foreach_addcmul_(rates.weights, rates.applied(), w_grads, value=-w_scale)
    return meta, logits_in


def _look_ahead_chunks(x_in, y_in, inner_steps: int):
    return [
        (xc, yc)
        for xc, yc in zip(x_in.tensor_split(inner_steps), y_in.tensor_split(inner_steps))
        if len(yc)
    ]


def meta_grads_first_order(
    model, rates, loss, x_in, y_in, x_mem, y_mem, inner_steps: int, grad_clip: float
):
    """First-order meta-gradients in closed form, from plain backward passes.

    With the look-ahead gradients g_i treated as constants, the weights after k steps are
    w - relu(a) * G_k (G_k = g_1 + ... + g_k), so the k-th meta-loss m_k has
    dm_k/dw = dm_k/dw_k and dm_k/da = -G_k * dm_k/dw_k * [a > 0]. That is the same gradient
    autograd gives through the rates, at about half the cost (no graph through them); the
    backward passes themselves are the backbone's ``forward_vjp`` and the loss's closed-form
    gradient. (``lamaml_step`` takes the sums and folds the mean into its update.)
    """
    meta, w_grads, a_grads, logits_in, k = _meta_grad_sums(
        model, rates, loss, x_in, y_in, x_mem, y_mem, inner_steps, grad_clip
    )
    torch._foreach_div_(w_grads, k)
    torch._foreach_div_(a_grads, -k)
    return meta, w_grads, a_grads, logits_in


@torch.no_grad()
def _meta_grad_sums(model, rates, loss, x_in, y_in, x_mem, y_mem, inner_steps, grad_clip):
    """(mean meta-loss, sum of dm_k/dw_k, sum of G_k * dm_k/dw_k where a > 0, the incoming
    logits, k): ``meta_grads_first_order`` before its division by k and -k."""
    applied = rates.applied()
    x_meta = torch.cat([x_in, x_mem]) if x_mem is not None else x_in
    y_meta = torch.cat([y_in, y_mem]) if y_mem is not None else y_in
    n_in = len(y_in)
    fast = rates.weights  # the look-ahead starts at the weights (and never writes to them)
    cum = w_grads = a_grads = None  # G_k, sum of dm_k/dw_k, sum of G_k * dm_k/dw_k
    meta_losses = []
    for xc, yc in _look_ahead_chunks(x_in, y_in, inner_steps):
        logits, vjp, _ = forward_vjp(model, fast, xc)
        grads = vjp(loss.with_grad(logits, yc, len(yc), want_loss=False)[1])
        clip_(grads, grad_clip)  # fresh tensors, and no graph to keep: in place
        fast = list(torch._foreach_addcmul(fast, applied, grads, value=-1))
        cum = list(grads) if cum is None else list(torch._foreach_add(cum, grads))
        logits, vjp, _ = forward_vjp(model, fast, x_meta)
        meta, grad_logits = loss.with_grad(logits, y_meta, n_in)
        grads = vjp(grad_logits)
        if w_grads is None:
            w_grads, a_grads = grads, list(torch._foreach_mul(cum, grads))
        else:
            torch._foreach_add_(w_grads, grads)
            torch._foreach_addcmul_(a_grads, cum, grads)
        meta_losses.append(meta)
    torch._foreach_mul_(a_grads, torch._foreach_sign(applied))  # no gradient where a <= 0
    k = len(meta_losses)
    return torch.stack(meta_losses).mean(), w_grads, a_grads, logits[:n_in], k


def meta_grads_autograd(
    model,
    rates,
    loss,
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
    weights = rates.weights
    fast = dict(zip(rates.names, weights))
    x_meta = torch.cat([x_in, x_mem]) if x_mem is not None else x_in
    n_in = len(y_in)
    meta_losses = []
    for xc, yc in _look_ahead_chunks(x_in, y_in, inner_steps):
        inner = loss(forward_with(model, fast, xc), yc)
        grads = torch.autograd.grad(inner, list(fast.values()), create_graph=create_graph)
        grads = _clipped(grads, grad_clip)
        # the rates stay in the graph even first-order: that is what their gradient flows through
        applied = [F.relu(a) for a in rates.rates]
        fast = {n: w - a * g for (n, w), a, g in zip(fast.items(), applied, grads)}
        logits = forward_with(model, fast, x_meta)
        meta_losses.append(loss(logits[:n_in], y_in, logits[n_in:], y_mem))
    meta = torch.stack(meta_losses).mean()
    grads = torch.autograd.grad(meta, weights + rates.tensors)
    w_grads, a_grads = list(grads[: len(weights)]), list(grads[len(weights) :])
    return meta.detach(), w_grads, a_grads, logits[:n_in].detach()


def _clipped(grads, max_norm: float) -> list[torch.Tensor]:
    """Look-ahead gradients scaled to joint norm at most max_norm (out of place, so autograd
    can differentiate through it). Unclipped, one large look-ahead step on a batch of new
    classes can throw the meta-loss, and then the rates, off to infinity."""
    if max_norm <= 0:
        return list(grads)
    total = _total_norm(grads).detach()
    scale = torch.clamp(max_norm / (total + 1e-12), max=1.0)
    return [g * scale for g in grads]


def clip_(grads, max_norm: float, scale: float = 1.0) -> None:
    """Scale grads in place so that ``scale * grads`` has joint L2 norm at most max_norm
    (0: off). The factor stays a tensor on the gradients' device: reading it on the host
    would wait for the device at every step."""
    if max_norm <= 0:
        return
    norm = _total_norm(grads)
    if scale != 1.0:
        norm = norm * scale
    torch._foreach_mul_(list(grads), (max_norm / (norm + 1e-12)).clamp_(max=1.0))


def _total_norm(grads) -> torch.Tensor:
    """The joint L2 norm (``get_total_norm`` without its per-call grouping by device)."""
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(list(grads))))
