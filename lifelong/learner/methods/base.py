"""What every learning method is: one small protocol between the agent and an update rule.

The agent owns the loop's bookkeeping (drawing replay, writing memory, task masks, time);
a method owns one thing, how the weights move given one update's data. It gets an
``Update`` (the incoming batch, a replay batch with the logits stored with each memory, and
which logits a task-incremental stream allows) and returns the loss and the incoming
batch's logits (which memories of these examples keep, for logit replay); a method may
return a ``Step`` instead, which also hands over the forward pass it made (every row's
embedding and logits), so the agent's controller learns from it without a forward of its own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

from lifelong.learner.losses import ReplayLoss


@dataclass
class Update:
    """One update's data. The replay fields are None while memory is empty; masks are
    None where every logit counts (all but task-incremental streams)."""

    x: torch.Tensor
    y: torch.Tensor
    x_mem: torch.Tensor | None = None
    y_mem: torch.Tensor | None = None
    t_mem: torch.Tensor | None = None  # the memories' task ids (-1: none)
    z_mem: torch.Tensor | None = None  # the logits stored with each memory
    mask_in: torch.Tensor | None = None  # (C,) or (n, C) allowed logits of the incoming
    mask_mem: torch.Tensor | None = None  # (n_mem, C) allowed logits of the memories


class Step(NamedTuple):
    """What an update returns: the loss and the incoming rows' logits (a plain
    ``(loss, logits)`` pair is one), and, where the update's forward pass gives them, every
    row's embedding and logits (incoming rows first, then replayed) at the weights it
    started from."""

    loss: torch.Tensor
    logits: torch.Tensor
    features: torch.Tensor | None = None
    all_logits: torch.Tensor | None = None


@dataclass
class NoSettings:
    """A method without settings of its own."""


class Method:
    """Base class of learning methods: set ``Settings`` (a dataclass) and write ``update``.

    ``scenario`` is the stream's ("class", "task", "domain", "task-free"); methods that
    only make sense in some scenarios (ER-ACE) read it.
    """

    Settings: ClassVar[type] = NoSettings
    # True where ``update`` returns the incoming batch's logits at the weights it started
    # from: the agent then reads its online accuracy from them instead of a forward pass
    logits_before_update: ClassVar[bool] = False
    # True where ``update`` returns a ``Step`` with every row's embedding and logits at the
    # weights it started from: the prediction controller learns from them, no forward of
    # its own
    forward_in_step: ClassVar[bool] = False
    # True where ``update`` is tensor work alone, the same every call for the same shapes
    # (no host reads, no Python state that changes): on a GPU it is then captured as a
    # CUDA graph and replayed
    capturable: ClassVar[bool] = False

    def __init__(self, model: nn.Module, settings: Any, scenario: str = "class") -> None:
        self.model = model
        self.settings = settings
        self.scenario = scenario
        self.weights = list(model.parameters())  # what updates move, in place

    def update(self, batch: Update) -> tuple[torch.Tensor, torch.Tensor] | Step:
        """Move the weights on ``batch``; return (loss, logits of the incoming batch), or a
        ``Step``. Keep it free of host reads (``float``, ``.item()``, ``.tolist()``): on a
        GPU each one waits for the device."""
        raise NotImplementedError

    def rows(self, batch: Update) -> int:
        """Examples this update passes forward and back (the compute axis counts them)."""
        return self.rows_for(len(batch.y), 0 if batch.y_mem is None else len(batch.y_mem))

    def rows_for(self, incoming: int, replayed: int) -> int:
        """``rows`` of an update of ``incoming`` and ``replayed`` examples, before it is made
        (a compute plan sizes the update by it)."""
        return incoming + replayed

    def loss(self, batch: Update) -> ReplayLoss:
        """This update's loss, bound to the batch's masks and stored logits."""
        return ReplayLoss(False, batch.mask_in, batch.mask_mem)

    def state_dict(self) -> dict:
        """What the method learns besides the weights (La-MAML's rates); plain tensors."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, got {sorted(state)}")

    @classmethod
    def settings_from(cls, values: dict) -> Any:
        """The method's settings, taking each field from ``values`` (a run config's keys)
        where it is there, else the field's default."""
        names = {f.name for f in dataclasses.fields(cls.Settings)}
        return cls.Settings(**{k: v for k, v in values.items() if k in names})
