"""ER-ACE (Caccia et al. 2022): the incoming examples' cross-entropy only sees the classes
present in their own batch, so new classes stop pushing old logits down, the main source
of recency bias in class-incremental streams; replayed examples see every class. On a
domain-incremental stream no new classes arrive, and masking only hurts: there it is plain
replay. With ``distill`` it keeps DER++'s logit matching too."""

from __future__ import annotations

from dataclasses import dataclass

from lifelong.learner.losses import ReplayLoss
from lifelong.learner.methods.base import Update
from lifelong.learner.methods.er import ER, ERSettings


@dataclass
class ERACESettings(ERSettings):
    distill: float = 0.0  # DER++'s logit matching on top (0: off)


class ERACE(ER):
    Settings = ERACESettings

    def loss(self, batch: Update) -> ReplayLoss:
        ace = self.scenario != "domain"
        s = self.settings
        return ReplayLoss(ace, batch.mask_in, batch.mask_mem, batch.z_mem, s.distill)
