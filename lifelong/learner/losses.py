"""The replay loss every learning method here shares: masked cross-entropy on incoming and
replayed examples, ER-ACE's masking, and DER's logit matching.

``ReplayLoss`` offers it twice: as a differentiable function (for autograd, e.g. the
controller's second-order meta-gradients) and with its gradient in closed form
(``with_grad``), which the hot paths use: at a batch of 20 examples, building and walking
an autograd graph costs more than the arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

NEG = -1e9  # a masked logit: exp() underflows to 0 without the NaNs that -inf can give


def mask_to(logits: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
    """Keep logits of allowed classes; ``allowed`` is (C,) or (N, C) bool, or None for all."""
    if allowed is None:
        return logits
    return logits.masked_fill(~allowed, NEG)


@torch.no_grad()
def count_correct(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """How many of a batch these logits label right (within the task's classes, if masked),
    as a 0-d tensor on their device."""
    if mask is not None:
        logits = mask_to(logits, mask.expand(len(y), -1))
    return (logits.argmax(1) == y).sum()


def present_classes(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(C,) bool: which classes occur in y (on y's device)."""
    return torch.zeros(n_classes, dtype=torch.bool, device=y.device).index_fill_(0, y, True)


def replay_loss(
    logits_in,
    y_in,
    logits_mem,
    y_mem,
    *,
    ace: bool,
    mask_in=None,
    mask_mem=None,
    target_logits=None,
    distill: float = 0.0,
):
    """Cross-entropy on incoming + replayed examples.

    With ``ace`` (Caccia et al. 2022, ER-ACE) the incoming examples only compete with the
    classes present in their own batch, so new classes stop pushing old logits down: the
    main source of recency bias in class-incremental streams. Replayed examples see every
    class. Task masks (task-incremental streams) apply on top. With ``distill`` (DER++,
    Buzzega et al. 2020) replayed logits are also pulled towards ``target_logits``, the
    network's outputs when each memory was written.
    """
    if ace:
        present = present_classes(y_in, logits_in.shape[1])
        mask_in = present if mask_in is None else mask_in & present
    loss = F.cross_entropy(mask_to(logits_in, mask_in), y_in)
    if logits_mem is None or y_mem is None or len(y_mem) == 0:
        return loss
    loss = loss + F.cross_entropy(mask_to(logits_mem, mask_mem), y_mem)
    if distill and target_logits is not None:
        loss = loss + distill * F.mse_loss(logits_mem, target_logits)
    return loss


@lru_cache(maxsize=64)
def _row_weights(n_in: int, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's weight in the loss, as a column and negated: the two cross-entropies are
    means over their own rows. Cached per device: the same few batch shapes recur every
    step, and a tensor made once is never copied to the device again."""
    w = torch.full((n, 1), 1.0 / n_in)
    w[n_in:] = 1.0 / max(n - n_in, 1)
    w = w.to(device)
    return w, -w


@dataclass(frozen=True)
class ReplayLoss:
    """``replay_loss`` with one step's settings bound: masks and the memories' logit targets."""

    ace: bool = False
    mask_in: torch.Tensor | None = None  # (C,) or (n_in, C) bool
    mask_mem: torch.Tensor | None = None  # (n_mem, C) bool
    target_logits: torch.Tensor | None = None  # (n_mem, C)
    distill: float = 0.0

    def __call__(self, logits_in, y_in, logits_mem=None, y_mem=None) -> torch.Tensor:
        return replay_loss(
            logits_in,
            y_in,
            logits_mem,
            y_mem,
            ace=self.ace,
            mask_in=self.mask_in,
            mask_mem=self.mask_mem,
            target_logits=self.target_logits,
            distill=self.distill,
        )

    def with_grad(
        self, logits: torch.Tensor, y: torch.Tensor, n_in: int, *, want_loss: bool = True
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(loss, dloss/dlogits) for stacked logits: the first ``n_in`` rows incoming, the rest
        replayed. Softmax cross-entropy's gradient is softmax - onehot; the MSE's is
        2 (z - target) / its element count; masked logits get none. ``want_loss=False``
        (the controller's look-ahead steps, which use only the gradient) skips the loss and
        returns None for it."""
        n, n_classes = logits.shape
        n_mem = n - n_in
        z = mask_to(logits, self._mask(y[:n_in], n, n_in, n_classes))
        weights, neg_weights = _row_weights(n_in, n, logits.device)
        target = y.view(n, 1)
        log_p = torch.log_softmax(z, 1)
        loss = log_p.gather(1, target).mul_(neg_weights).sum() if want_loss else None
        grad = log_p.exp_().mul_(weights).scatter_add_(1, target, neg_weights)
        if self.distill and n_mem and self.target_logits is not None:
            diff = logits[n_in:] - self.target_logits
            scale = self.distill / diff.numel()
            if loss is not None:
                loss = loss.add_(torch.dot(diff.view(-1), diff.view(-1)), alpha=scale)
            grad[n_in:].add_(diff, alpha=2.0 * scale)
        return loss, grad

    def _mask(self, y_in, n: int, n_in: int, n_classes: int) -> torch.Tensor | None:
        """(n, C) allowed logits, or None when every logit counts."""
        mask_in = self.mask_in
        if self.ace:
            present = present_classes(y_in, n_classes)
            mask_in = present if mask_in is None else mask_in & present
        mask_mem = self.mask_mem if n > n_in else None
        if mask_in is None and mask_mem is None:
            return None
        mask = torch.ones(n, n_classes, dtype=torch.bool, device=y_in.device)
        if mask_in is not None:
            mask[:n_in] = mask_in
        if mask_mem is not None:
            mask[n_in:] = mask_mem
        return mask
