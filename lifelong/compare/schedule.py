"""Which batches an Avalanche strategy learns, and when, under the protocols whose rule our
runner keeps batch by batch (``lifelong/runner/training.py``): a stream that does not wait
(``compare --real-time``) and labels that come late (``compare --label-delay``).

A strategy's loop is its own, so the rule becomes a schedule fixed before that loop runs.
Time is counted in the batches the stream reveals: experience i's *window* is the time its
batches arrive. In a window the strategy learns the batch whose labels come at each arrival
(the arrival itself, or the one ``delay`` arrivals back), and, on a stream that does not
wait, only when its cost per batch (metered in that window of its run on the waiting stream)
has left it free. Each window becomes one ``strategy.train`` call on those batches, batched
in the order our runner batches their experience; batches whose labels come after the stream
ends are never learned. On a task-incremental stream a window that holds the late tail of the
previous task is trained as two calls, one per task (a multi-head model trains one task's
head per experience).
"""

from __future__ import annotations

import dataclasses

import torch

from lifelong.runner.clock import StreamClock
from lifelong.runner.training import learning_order
from streams import Stream

Learned = list[list[tuple[int, int]]]  # by window: the (experience, batch) pairs learned in it


def batches_per_experience(stream: Stream, batch_size: int) -> list[int]:
    """How many batches our runner forms of each experience."""
    return [_batch_count(e.n_train, batch_size) for e in stream]


def _batch_count(n: int, batch_size: int) -> int:
    return -(-n // batch_size)


def schedule(
    batches: list[int],
    delay: int = 0,
    cost: list[float] | None = None,
    interval: float | None = None,
) -> Learned:
    """For experiences of ``batches[i]`` batches each, the (experience, batch) pairs learned in
    each experience's window: with ``delay``, the batch ``delay`` arrivals back; with a clock
    (``interval`` between arrivals, ``cost[i]`` per batch learned in window i), only while
    the learner is free."""
    where = [(e, b) for e, n in enumerate(batches) for b in range(n)]
    clock = StreamClock(interval=interval) if interval is not None else None
    learned: Learned = []
    arrived = 0
    for i, n in enumerate(batches):
        mine = []
        for _ in range(n):
            free = clock is None or clock.arrive()
            ready = arrived - delay  # the batch whose labels come with this arrival
            arrived += 1
            if free and ready >= 0:
                if clock is not None:
                    clock.took(cost[i])
                mine.append(where[ready])
        learned.append(mine)
    return learned


def learned_share(learned: Learned, batches: list[int]) -> float:
    """Batches learned over batches revealed."""
    return sum(map(len, learned)) / max(sum(batches), 1)


def scheduled_stream(
    stream: Stream, learned: Learned, batch_size: int, seed: int, shuffle: bool
) -> tuple[Stream, list[list[int]]]:
    """The stream the strategy trains on, and which of its experiences make up each window.

    Its experiences are the windows' batches (the batches our runner forms, in its seeded
    order), split where the task changes on a task-incremental stream; test sets are those
    of the experience the batches came from (unused: every method is evaluated on the
    original stream's test sets)."""
    batch = _Batches(stream, batch_size, seed, shuffle)
    experience = batch.experience

    pieces: list[list[tuple[int, int]]] = []
    windows: list[list[int]] = []
    for pairs in learned:
        mine: list[int] = []
        for e, b in pairs:
            if mine and not (stream.task_aware and pieces[-1][-1][0] != e):
                pieces[-1].append((e, b))
            else:  # the window's first batch, or the next task's
                mine.append(len(pieces))
                pieces.append([(e, b)])
        windows.append(mine)

    def build(k: int):
        xs, ys = zip(*(batch(e, b) for e, b in pieces[k]), strict=True)
        last, _ = experience(pieces[k][-1][0])  # built just now; one task (see above)
        return dataclasses.replace(last, id=k, x_train=torch.cat(xs), y_train=torch.cat(ys))

    return dataclasses.replace(stream, n_experiences=len(pieces), build=build), windows


def answers_due(
    stream: Stream, learned: Learned, batch_size: int, seed: int, shuffle: bool
) -> list[list[tuple[int, torch.Tensor, torch.Tensor, int]]]:
    """For each window of a stream that does not wait (labels at once), the batches the
    strategy was too busy to learn, each with how many of the window's learned batches came
    before it: (learned before it, x, y, task id), for ``online``'s answers."""
    batch = _Batches(stream, batch_size, seed, shuffle)
    due = []
    for i, pairs in enumerate(learned):
        if any(e != i for e, _ in pairs):
            raise ValueError("answers_due: a window learned another experience's batch (delay)")
        exp, _ = batch.experience(i)
        task = int(exp.task_id or 0) if stream.task_aware else 0
        taken = {b for _, b in pairs}
        mine, before = [], 0
        for b in range(_batch_count(exp.n_train, batch_size)):
            if b in taken:
                before += 1
            else:
                mine.append((before, *batch(i, b), task))
        due.append(mine)
    return due


class _Batches:
    """Batch ``b`` of experience ``e`` as our runner forms it (its seeded order), the last
    experience built kept: a window reaches back one experience at most."""

    def __init__(self, stream: Stream, batch_size: int, seed: int, shuffle: bool) -> None:
        self.stream, self.batch_size = stream, batch_size
        self.order_of = _OrderConfig(seed=seed, shuffle=shuffle)
        self.built: dict[int, tuple] = {}

    def experience(self, e: int) -> tuple:
        """Experience ``e`` and our runner's order of its examples."""
        if e not in self.built:
            exp = self.stream.build(e)
            self.built.clear()
            self.built[e] = (exp, learning_order(self.order_of, e, exp.n_train))
        return self.built[e]

    def __call__(self, e: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        exp, order = self.experience(e)
        idx = order[b * self.batch_size : (b + 1) * self.batch_size]
        return exp.x_train[idx], exp.y_train[idx]


@dataclasses.dataclass
class _OrderConfig:
    """What ``learning_order`` reads of a run config."""

    seed: int = 0
    shuffle: bool = True
