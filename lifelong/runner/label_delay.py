"""Labels that arrive late (Csaba et al., "Label Delay in Online Continual Learning",
NeurIPS 2024): a batch is predicted when it arrives (online accuracy counts that answer) and
learned ``label_delay`` batches later, when its labels come. Batches whose labels have not
come when the stream ends are never learned.

A checkpoint keeps where each waiting batch is in the stream, not its tensors: a named
stream's batches are the same on every run (its seeded order), so a resumed run fetches
them again. A live stream's are not kept, so label delay needs a named stream.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class Arrival:
    """A batch as it arrived: where it is in the stream, and its data."""

    experience: int
    batch: int  # within its experience
    number: int  # in the whole stream, counting from 0
    position: int  # its first example's place in the stream
    x: torch.Tensor
    y: torch.Tensor
    task: int | None


Fetch = Callable[[int, int], tuple[torch.Tensor, torch.Tensor, int | None]]


class PendingLabels:
    """The batches waiting for their labels, oldest first."""

    def __init__(self, delay: int) -> None:
        self.delay = delay
        self.waiting: collections.deque[Arrival] = collections.deque()

    def push(self, arrival: Arrival) -> Arrival | None:
        """``arrival`` joins the wait; the batch whose labels come now, if one does."""
        self.waiting.append(arrival)
        return self.waiting.popleft() if len(self.waiting) > self.delay else None

    def to_list(self) -> list[list[int]]:
        return [[a.experience, a.batch, a.number, a.position] for a in self.waiting]

    @classmethod
    def restore(cls, delay: int, saved: list[list[int]], fetch: Fetch) -> PendingLabels:
        """From a checkpoint's list, each batch's data fetched again from the stream."""
        pending = cls(delay)
        for experience, batch, number, position in saved:
            x, y, task = fetch(experience, batch)
            pending.waiting.append(Arrival(experience, batch, number, position, x, y, task))
        return pending
