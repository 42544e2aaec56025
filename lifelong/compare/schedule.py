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

import bisect
import dataclasses
from collections.abc import Callable, Iterator

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


@dataclasses.dataclass
class Answer:
    """A batch a strategy answers in a window, once ``after`` of the window's training
    iterations are made: the arriving batch (online accuracy) or, ``near``, the batch after
    it in its experience (near-future accuracy)."""

    after: int
    x: torch.Tensor
    y: torch.Tensor
    task: int
    near: bool = False


def answers_on_arrival(
    stream: Stream,
    learned: Learned,
    batch_size: int,
    seed: int,
    shuffle: bool,
    delay: int = 0,
    near_future: bool = False,
) -> Iterator[list[Answer]]:
    """Window by window (built as asked for: a window's batches, not the stream's, held at a
    time), what the strategy answers as each of its batches arrives, with the
    model it has then: after the window's training iterations whose rows were all learned
    before that arrival (a batch is learned at the arrival that brings its labels, ``delay``
    arrivals after its own, and the strategy trains a window's batches in that order). A
    minibatch straddling an arrival (after a partial last batch) is not yet made: the answer
    never comes from a model that learned a row later than it. On a task-incremental stream a
    task's head exists only once the strategy starts training that task (Avalanche adds it
    then), so an arrival before that is answered then, the model having learned only the
    previous task's late batches since."""
    batch = _Batches(stream, batch_size, seed, shuffle)
    n_train: list[int] = []  # by experience, as each window builds its own (pairs reach back)
    first = [0]  # each experience's first arrival

    def rows(e: int, b: int) -> int:
        """Rows of batch ``b`` of experience ``e`` (a last batch may be partial)."""
        return min(batch_size, n_train[e] - b * batch_size)

    for i, pairs in enumerate(learned):
        exp, _ = batch.experience(i)
        count = _batch_count(exp.n_train, batch_size)  # the window's arrivals: its batches
        n_train.append(exp.n_train)
        first.append(first[-1] + count)
        ends, starts = _iteration_ends(pairs, rows, batch_size, stream.task_aware)
        task = int(exp.task_id or 0) if stream.task_aware else 0
        mine, learned_rows, k = [], 0, 0
        for b in range(count):
            arrival = first[i] + b
            while k < len(pairs) and first[pairs[k][0]] + pairs[k][1] + delay < arrival:
                learned_rows += rows(*pairs[k])
                k += 1
            after = bisect.bisect_right(ends, learned_rows) - 1
            after = max(after, starts.get(i, 0))
            mine.append(Answer(after, *batch(i, b), task))
            if near_future and b + 1 < count:
                mine.append(Answer(after, *batch(i, b + 1), task, near=True))
        yield mine


def _iteration_ends(
    pairs: list[tuple[int, int]],
    rows: Callable[[int, int], int],
    batch_size: int,
    task_aware: bool,
) -> tuple[list[int], dict[int, int]]:
    """Rows a window's training has learned after each of its iterations (0 before the
    first), its pieces minibatched apart as ``scheduled_stream`` makes them; and, by
    experience, the iteration its piece starts at."""
    ends, starts = [0], {}
    done, piece, last = 0, 0, None
    for e, b in [*pairs, (None, None)]:
        if e is None or (last is not None and task_aware and e != last):
            for _ in range(-(-piece // batch_size)):  # the piece's minibatches
                done += min(batch_size, piece)
                piece -= min(batch_size, piece)
                ends.append(done)
        if e is None:
            break
        if last is None or (task_aware and e != last):
            starts.setdefault(e, len(ends) - 1)
        piece += rows(e, b)
        last = e
    return ends, starts


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
