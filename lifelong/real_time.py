"""``compare --real-time``: Avalanche's strategies under the stream clock our runs keep
(``lifelong/runner/clock.py``).

Our agent meets the clock batch by batch, inside its loop. An Avalanche strategy's loop is
its own, so it gets the same rule as a schedule fixed before that loop runs: its cost per
batch is what the meter counted in each experience of its run on the waiting stream (same
seed: replay costs more once its buffer holds something), and it learns
the batches a learner of that cost is free for when they arrive; each experience's training
set is cut to those batches, batched in the order our runner batches the experience. It
trains on what it had the time for; what it had not, it never sees.
"""

from __future__ import annotations

import dataclasses

import torch

from lifelong.runner.clock import StreamClock
from lifelong.runner.training import learning_order
from streams import Stream


def real_time_jobs(waiting_jobs: list[tuple], waited: list[dict], cfg, out, is_ours) -> list:
    """The compare jobs of the real-time rows: ours with the clock on (``ours@S`` at its
    fixed budget: the rows the default's own choice of compute is measured against); each
    Avalanche strategy with the schedule its cost in each experience of the waiting stream
    (same seed) leaves it."""
    import streams

    cost = {(r["method"], r["seed"]): r.get("compute_units_per_batch") for r in waited}
    sizes: dict[int, list[int]] = {}
    interval = StreamClock.for_run(cfg.batch_size, cfg.stream_rate).interval
    jobs = []
    for name, stream_name, seed, memory, _, _, _ in waiting_jobs:
        learned, mine = None, cfg
        if name.startswith("ours@"):
            mine = dataclasses.replace(cfg, fit_compute=False)
        if not is_ours(name):
            if seed not in sizes:
                stream = streams.get_stream(
                    stream_name, experiences=cfg.experiences or None, seed=seed
                )
                sizes[seed] = [-(-e.n_train // cfg.batch_size) for e in stream]
            learned = schedule(sizes[seed], cost[name, seed], interval)
        jobs.append((name, stream_name, seed, memory, mine, out, learned))
    return jobs


def schedule(batches: list[int], cost: list[float], interval: float) -> list[list[int]]:
    """For experiences of ``batches[i]`` batches each, the batches a learner spending
    ``cost[i]`` on each batch of experience i it learns is free to learn, numbered within
    each experience."""
    clock = StreamClock(interval=interval)
    learned = []
    for n, per_batch in zip(batches, cost, strict=True):
        mine = []
        for b in range(n):
            if clock.arrive():
                clock.took(per_batch)
                mine.append(b)
        learned.append(mine)
    return learned


def scheduled_stream(
    stream: Stream, learned: list[list[int]], batch_size: int, seed: int, shuffle: bool
) -> Stream:
    """``stream`` with each experience's training set cut to its ``learned`` batches, the
    batches our runner forms from it (the same seeded order), test sets whole."""
    order_of = dataclasses.replace(_OrderConfig(), seed=seed, shuffle=shuffle)
    build = stream.build

    def cut(i: int):
        e = build(i)
        order = learning_order(order_of, i, e.n_train)
        parts = [order[b * batch_size : (b + 1) * batch_size] for b in learned[i]]
        idx = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)
        return dataclasses.replace(e, x_train=e.x_train[idx], y_train=e.y_train[idx])

    return dataclasses.replace(stream, build=cut)


@dataclasses.dataclass
class _OrderConfig:
    """What ``learning_order`` reads of a run config."""

    seed: int = 0
    shuffle: bool = True
