"""The jobs of ``compare``'s protocols beyond the waiting stream: a stream that does not wait
(``--real-time``) and labels that come late (``--label-delay``). Our agent keeps their rule
inside its own loop; each Avalanche strategy gets it as a schedule fixed before its loop runs
(``lifelong/compare/schedule.py``). Its cost per batch, which decides what it has the time
to learn, is what the meter counted in each window of its run on the waiting stream (same
seed and delay: replay costs more once its buffer holds something).
"""

from __future__ import annotations

import dataclasses

from lifelong.compare.schedule import batches_per_experience, schedule
from lifelong.runner.clock import StreamClock


def late_label_jobs(jobs: list[tuple], cfg, is_ours) -> list[tuple]:
    """``jobs`` with each Avalanche strategy given the batches whose labels come in each
    experience's window (``cfg.label_delay`` batches late), ours with the delay itself."""
    if not cfg.label_delay:
        return jobs
    sizes = _sizes(jobs, cfg, is_ours)
    return [
        (name, stream_name, seed, memory, mine, out, None)
        if is_ours(name)
        else (name, stream_name, seed, memory, mine, out, schedule(sizes[seed], cfg.label_delay))
        for name, stream_name, seed, memory, mine, out, _ in jobs
    ]


def real_time_jobs(waiting_jobs: list[tuple], waited: list[dict], cfg, out, is_ours) -> list:
    """The compare jobs of the real-time rows: ours with the clock on (``ours@S`` at its
    fixed budget: the rows the default's own choice of compute is measured against); each
    Avalanche strategy with the schedule its cost in each window of the waiting stream
    (same seed) leaves it."""
    cost = {(r["method"], r["seed"]): r.get("compute_units_per_batch") for r in waited}
    sizes = _sizes(waiting_jobs, cfg, is_ours)
    interval = StreamClock.for_run(cfg.batch_size, cfg.stream_rate).interval
    jobs = []
    for name, stream_name, seed, memory, _, _, _ in waiting_jobs:
        learned, mine = None, cfg
        if name.startswith("ours@"):
            mine = dataclasses.replace(cfg, fit_compute=False)
        if not is_ours(name):
            learned = schedule(sizes[seed], cfg.label_delay, cost[name, seed], interval)
        jobs.append((name, stream_name, seed, memory, mine, out, learned))
    return jobs


def _sizes(jobs: list[tuple], cfg, is_ours) -> dict[int, list[int]]:
    """Batches per experience, for each seed an Avalanche strategy runs (a stream's split and
    order follow its seed)."""
    import streams

    sizes: dict[int, list[int]] = {}
    for name, stream_name, seed, *_ in jobs:
        if seed not in sizes and not is_ours(name):
            stream = streams.get_stream(stream_name, experiences=cfg.experiences or None, seed=seed)
            sizes[seed] = batches_per_experience(stream, cfg.batch_size)
    return sizes
