"""``WeightAverage``: a running average of the network's weights, which predicts in place of
the live weights once the stream has settled, and starts again when it falls behind.

Averaging the weights of the last few hundred updates smooths out the noise of one-pass SGD
and forgets less than the live weights do (0.003 to 0.012 on the domain-incremental
streams). It is the plain mean of the weights it has taken until its horizon (1 / (1 - decay)
steps), then exponential. Its weakness is lag: after the input distribution moves (a new
permutation or rotation, a new class) it still answers for the old one. The agent does not
let it predict until no class has been new for three horizons; and the average watches the
stream for the rest: on an incoming batch, which neither has learned yet, it compares its
own cross-entropy with the live weights' (exponential averages over about ten batches), and
once it is behind by more than ``LAG_NATS`` it starts again from the live weights. No
boundary is needed. On streams whose experiences are shorter than its horizon this is what
makes the average pay (rotated-digits 0.908 -> 0.944, permuted-digits 0.901 -> 0.925 at
five updates a batch, seeds 0-4); where they are longer it changes nothing (within 0.001).

It takes the weights and watches every ``EVERY``-th step, not every step, with its decay
raised to that power: an average over 200 steps is the same average sampled every fourth,
and the watch's forward pass was a third of the learner's time at one update a batch. Its
counters are tensors on the weights' device and the restart a ``where``, so nothing here
waits for the device.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from lifelong.learner.backbone import flat_view, forward_with

LAG_NATS = 0.5  # how far behind the live weights (incoming cross-entropy) before a restart
EVERY = 4  # steps between two takes (and watches)
WATCH_DECAY = 0.9**EVERY  # of the two running cross-entropies: about ten batches


class WeightAverage:
    """The averaged weights of ``model`` and what decides when they start again."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.names = [name for name, _ in model.named_parameters()]
        live = list(model.parameters())
        self.live_flat = flat_view(live)  # the model's weights as one buffer, if they are
        self.flat = torch.cat([w.detach().reshape(-1) for w in live])
        views = self.flat.split([w.numel() for w in live])
        self.weights = [v.view_as(w) for v, w in zip(views, live, strict=True)]
        device = self.flat.device
        self.count = torch.zeros((), device=device)  # weights taken since the (re)start
        self.restarts_seen = torch.zeros((), device=device)
        nan = torch.tensor(float("nan"), device=device)  # NaN: not measured yet
        self.live_loss = nan.clone()  # running incoming cross-entropy, live weights
        self.own_loss = nan.clone()  # ... and the average's
        self.in_model = False  # whether the model holds the average now (``swapped_in``)

    @property
    def horizon(self) -> float:
        """The horizon in steps."""
        return 1 / (1 - self.decay)

    @property
    def restarts(self) -> int:
        """Times it fell behind and started again (reads the device)."""
        return int(self.restarts_seen)

    def due(self, step: int) -> bool:
        """Whether step number ``step`` (counting from 1) takes the weights."""
        return step % EVERY == 0

    @torch.no_grad()
    def update(
        self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, live_logits: torch.Tensor
    ) -> None:
        """Watch an incoming batch neither has learned (``live_logits``: the live weights'
        logits of it, from before the update), then take the weights after the update: from
        scratch where the watch found the average behind."""
        own = forward_with(model, dict(zip(self.names, self.weights, strict=True)), x)
        live_ce = F.cross_entropy(live_logits, y)
        own_ce = F.cross_entropy(own, y)
        fresh = torch.isnan(self.live_loss)
        rate = 1 - WATCH_DECAY
        self.live_loss.copy_(torch.where(fresh, live_ce, torch.lerp(self.live_loss, live_ce, rate)))
        self.own_loss.copy_(torch.where(fresh, own_ce, torch.lerp(self.own_loss, own_ce, rate)))
        behind = (self.own_loss - self.live_loss > LAG_NATS) & (self.count > 0)
        self.take(model, behind)

    @torch.no_grad()
    def take(self, model: torch.nn.Module, restart: torch.Tensor | bool = False) -> None:
        """Take in the weights after an update; ``restart`` (a bool tensor): start again from
        them. The mean of every take until the horizon, then exponential."""
        restart = torch.as_tensor(restart, device=self.count.device)
        self.count.copy_(torch.where(restart, 1.0, self.count + 1))
        per_take = self.decay**EVERY
        rate = torch.where(restart, 1.0, torch.clamp(1 / self.count, min=1 - per_take))
        if self.live_flat is not None:
            self.flat.lerp_(self.live_flat, rate)
        else:
            torch._foreach_lerp_(self.weights, list(model.parameters()), rate)
        self.own_loss.copy_(torch.where(restart, self.live_loss, self.own_loss))
        self.restarts_seen.add_(restart)

    @contextlib.contextmanager
    def swapped_in(self, model: torch.nn.Module):
        """The averaged weights in ``model`` for the duration; the live ones back after."""
        params = list(model.parameters())
        with torch.no_grad():
            live = [w.detach().clone() for w in params]
            torch._foreach_copy_(params, self.weights)
        self.in_model = True
        try:
            yield
        finally:
            self.in_model = False
            with torch.no_grad():
                torch._foreach_copy_(params, live)

    def state_dict(self) -> dict:
        return {
            "weights": [w.cpu() for w in self.weights],
            "counters": torch.stack([self.count, self.restarts_seen]).cpu(),
            "losses": torch.stack([self.live_loss, self.own_loss]).cpu(),
            "every": torch.tensor(EVERY),
        }

    def load_state_dict(self, state: dict, steps: int) -> None:
        """Restore; a checkpoint from before the restarts (a bare list of weights) counts
        ``steps`` steps averaged, one from before it took every ``EVERY`` steps its steps."""
        device = self.count.device
        weights = state if isinstance(state, list) else state["weights"]
        torch._foreach_copy_(self.weights, [w.to(device) for w in weights])
        if isinstance(state, list):
            self.count = torch.tensor(float(steps // EVERY), device=device)
            self.restarts_seen = torch.zeros((), device=device)
            self.live_loss = torch.tensor(float("nan"), device=device)
            self.own_loss = torch.tensor(float("nan"), device=device)
            return
        count, restarts = (float(v) for v in state["counters"])
        every = int(state.get("every", 1))
        self.count = torch.tensor(max(count * every // EVERY, min(count, 1)), device=device)
        self.restarts_seen = torch.tensor(restarts, device=device)
        live, own = state["losses"].float()
        self.live_loss, self.own_loss = live.to(device, copy=True), own.to(device, copy=True)
