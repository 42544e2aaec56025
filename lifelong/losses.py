"""Losses shared by the learning methods: masked cross-entropy and the ER-ACE replay loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

NEG = -1e9  # a masked logit: exp() underflows to 0 without the NaNs that -inf can give


def mask_to(logits: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
    """Keep logits of allowed classes; ``allowed`` is (C,) or (N, C) bool, or None for all."""
    if allowed is None:
        return logits
    return logits.masked_fill(~allowed, NEG)


def present_classes(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(C,) bool: which classes occur in y."""
    m = torch.zeros(n_classes, dtype=torch.bool)
    m[y] = True
    return m


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
