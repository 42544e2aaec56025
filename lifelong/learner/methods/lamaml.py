"""La-MAML (Gupta, Yadav & Paull 2020): a learning rate for every weight, learned online.

For each incoming batch: look-ahead steps with the current rates, a meta-loss of the
looked-ahead weights on the incoming batch plus replay, then the rates and the weights move
down its gradient (weights with the rates clipped at zero). Rates whose look-ahead hurt old
tasks shrink. The step itself is ``learned_rates.lamaml_step``; first-order meta-gradients come
in closed form (``second_order`` differentiates through the look-ahead with autograd).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lifelong.learner.learned_rates import LearnedRates, lamaml_step
from lifelong.learner.losses import ReplayLoss
from lifelong.learner.methods.base import Method, Update


@dataclass
class LaMAMLSettings:
    alpha_init: float = 0.05  # every weight's first learning rate
    alpha_lr: float = 0.03  # step size of the rates
    inner_steps: int = 2  # look-ahead steps per incoming batch
    second_order: bool = False  # differentiate through the look-ahead
    grad_clip: float = 2.0  # clip look-ahead and meta-gradients to this norm (0: off)
    distill: float = 1.0  # DER++'s logit matching in the meta-loss (0: off)
    ace: bool = False  # ER-ACE's incoming-loss mask in the meta-loss


class LaMAML(Method):
    Settings = LaMAMLSettings

    def __init__(self, model, settings: LaMAMLSettings, scenario: str = "class") -> None:
        super().__init__(model, settings, scenario)
        self.rates = LearnedRates(model, settings.alpha_init)

    def loss(self, batch: Update) -> ReplayLoss:
        ace = self.settings.ace and self.scenario != "domain"
        s = self.settings
        return ReplayLoss(ace, batch.mask_in, batch.mask_mem, batch.z_mem, s.distill)

    def rows_for(self, incoming: int, replayed: int) -> int:
        # the look-ahead passes over the incoming batch, then the meta-loss over it and replay
        return incoming + super().rows_for(incoming, replayed)

    def update(self, batch: Update) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.settings
        return lamaml_step(
            self.model,
            self.rates,
            self.loss(batch),
            batch.x,
            batch.y,
            batch.x_mem,
            batch.y_mem,
            inner_steps=s.inner_steps,
            second_order=s.second_order,
            rate_lr=s.alpha_lr,
            grad_clip=s.grad_clip,
        )

    def state_dict(self) -> dict:
        return self.rates.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.rates.load_state_dict(state)
