"""DER++ (Buzzega et al. 2020): experience replay that also pulls each replayed example's
logits towards the logits the network gave it when it was written (mean squared error,
weighted by ``distill``). The agent's default: old decision boundaries are held by the
logits, which are cheap to store and richer than labels."""

from __future__ import annotations

from dataclasses import dataclass

from lifelong.learner.losses import ReplayLoss
from lifelong.learner.methods.base import Update
from lifelong.learner.methods.er import ER, ERSettings


@dataclass
class DERppSettings(ERSettings):
    distill: float = 1.0  # weight of the logit-matching term


class DERpp(ER):
    Settings = DERppSettings

    def loss(self, batch: Update) -> ReplayLoss:
        return ReplayLoss(False, batch.mask_in, batch.mask_mem, batch.z_mem, self.settings.distill)
