"""The stream clock of the real-time protocol (Ghunaim et al., "Real-Time Evaluation in
Online Continual Learning", CVPR 2023): the stream reveals a batch every ``interval``
whether or not the learner is done with the last one. A learner still busy when a batch
arrives answers it (its prediction counts in online accuracy, as every batch's does) and
does not learn it; a learner C times as costly as plain replay learns one batch in C.

Time is counted in forward passes of one example on the run's model (an example passed
forward and back costs ``compute.BACKWARD_FACTOR``), the unit ``compare --compute`` counts
FLOPs in, so a run is the same on any machine: FLOPs are these units times one forward
pass's FLOPs. The default interval is one plain-replay update: a batch of B plus B replayed
memories, forward and back.

Near-future accuracy (Hammoud et al., ICCV 2023) rides along: as each batch arrives, the
learner, before learning it, predicts the batch after it, which no label correlation between
neighbouring batches helps with. A named stream that waits and labels at once keeps a clock
for that measure alone (``measures_only``): nothing of it decides what is learned.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch

from lifelong.learner.compute import BACKWARD_FACTOR


def compute_units(agent) -> float:
    """The agent's compute so far, in forward passes of one example."""
    return float(BACKWARD_FACTOR * agent.trained_rows + agent.forward_rows)


def replay_update_cost(batch_size: int) -> float:
    """One plain-replay update: B incoming and B replayed examples, forward and back."""
    return float(BACKWARD_FACTOR * 2 * batch_size)


@dataclass
class StreamClock:
    """Where the stream and the learner are in time, and what the stream's answers scored.
    Everything a checkpoint needs to resume the clock exactly is a field."""

    interval: float  # time between two batches, in forward passes of one example
    arrived: int = 0  # batches revealed so far
    busy_until: float = 0.0  # when the learner is done with the batch it last took
    spent: float = 0.0  # the learner's compute so far (its rows, weighted)
    learned: list[int] = field(default_factory=list)  # batches learned, numbered in the stream
    answered_correct: int = 0  # busy-time answers (learned batches count in the agent)
    answered_seen: int = 0
    near_correct: int = 0  # predictions of the batch after the arriving one
    near_seen: int = 0
    waits: bool = False  # the stream waits (a clock kept for the measures and late labels)
    delayed: bool = False  # labels come late: every batch is answered as it arrives

    @classmethod
    def for_run(cls, batch_size: int, stream_rate: float) -> StreamClock:
        """A clock revealing ``stream_rate`` batches per plain-replay update."""
        return cls(interval=replay_update_cost(batch_size) / stream_rate)

    def arrive(self, at: float | None = None) -> bool:
        """A batch is revealed (at its turn: ``at`` is the wall clock's); True if the
        learner is free to learn (a batch) now."""
        now = self.arrived * self.interval
        self.arrived += 1
        return self.waits or self.busy_until <= now

    def room(self) -> float | None:
        """The compute one batch may take: the time between two batches."""
        return self.interval

    def idle(self) -> float:
        """The compute the learner has before the next batch arrives, once done with what
        it took (unbounded where the stream waits)."""
        if self.waits:
            return math.inf
        free = max(self.busy_until, (self.arrived - 1) * self.interval if self.arrived else 0.0)
        return max(0.0, self.arrived * self.interval - free)

    def took(self, cost: float, number: int | None = None, seconds: float = 0.0) -> None:
        """The learner learned, at ``cost``, the batch that just arrived (or, its labels
        late, batch ``number`` of the stream); ``seconds`` is the wall clock's."""
        now = (self.arrived - 1) * self.interval
        self.busy_until = now + cost
        self.spent += cost
        if not self.measures_only:  # there, every batch: not worth a list the stream long
            self.learned.append(self.arrived - 1 if number is None else number)

    def busy(self, cost: float) -> None:
        """Work between batches (an experience's end): the learner is busy for ``cost``
        more, from when it was done or the last batch arrived, whichever is later."""
        last = (self.arrived - 1) * self.interval if self.arrived else 0.0
        self.busy_until = max(self.busy_until, last) + cost
        self.spent += cost

    def answer(self, agent, x: torch.Tensor, y: torch.Tensor, task_id: int | None) -> None:
        """A busy learner's answer to the batch it does not learn."""
        self.answered_correct += _hits(agent, x, y, task_id)
        self.answered_seen += len(y)

    def look_ahead(self, agent, x: torch.Tensor, y: torch.Tensor, task_id: int | None) -> None:
        """The learner's prediction of the batch after the arriving one."""
        self.near_correct += _hits(agent, x, y, task_id)
        self.near_seen += len(y)

    @property
    def measures_only(self) -> bool:
        """A clock of a stream that waits and labels at once: it counts near-future
        accuracy, and every batch is learned as it comes (nothing else to record)."""
        return self.waits and not self.delayed

    @property
    def learned_share(self) -> float | None:
        """Batches learned over batches revealed (1.0 when the stream waits)."""
        return len(self.learned) / self.arrived if self.arrived else None

    @property
    def near_future_accuracy(self) -> float | None:
        return self.near_correct / self.near_seen if self.near_seen else None

    def online_accuracy(self, agent) -> float | None:
        """Accuracy on every batch revealed: learned ones before learning them, the others
        as answered while busy."""
        if self.delayed:  # every batch answered on arrival; the agent's count is of late ones
            seen, correct = self.answered_seen, self.answered_correct
        else:
            seen = agent.online_seen + self.answered_seen
            correct = agent.online_correct + self.answered_correct
        return correct / seen if seen else None

    def summary(self, agent) -> dict:
        """The protocol's figures, for summary.json (a stream that waits and labels at once:
        near-future accuracy alone)."""
        if self.measures_only:
            return {"near_future_accuracy": self.near_future_accuracy}
        return {
            "clock": "compute",
            "stream_interval": None if self.waits else self.interval,
            "batches_revealed": self.arrived,
            "batches_learned": len(self.learned),
            "learned_share": self.learned_share,
            "online_accuracy_all_batches": self.online_accuracy(agent),
            "near_future_accuracy": self.near_future_accuracy,
            "compute_used_share": self.spent / (self.arrived * self.interval)
            if self.arrived and self.interval and not self.waits
            else None,
        }

    def record(self, ends: list[dict]) -> dict:
        """An experience end's account of the clock (``ends``: the earlier ones): the stream's
        batch numbers learned in it, and the counts so far (cumulative, as the online counts
        are)."""
        if self.measures_only:
            return {"near_correct": self.near_correct, "near_seen": self.near_seen}
        before = ends[-1]["batches_learned"] if ends else 0
        return {
            "learned_batches": self.learned[before:],
            "batches_revealed": self.arrived,
            "batches_learned": len(self.learned),
            "answered_correct": self.answered_correct,
            "answered_seen": self.answered_seen,
            "near_correct": self.near_correct,
            "near_seen": self.near_seen,
        }

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> StreamClock:
        return cls(**data)


def _hits(agent, x: torch.Tensor, y: torch.Tensor, task_id: int | None) -> int:
    return int((agent.predict(x, task_id, arriving=True) == y.cpu()).sum())
