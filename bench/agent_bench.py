"""Agent step benchmark: what the episodic store's persistence costs the learning step.

    python bench/agent_bench.py [--stream split-mnist5k] [--batches 400]

For plain replay and for La-MAML's learned rates, trains the agent on the stream's first
batches three times: with the store in a folder on disk, flushed only at the end (as a run
between checkpoints); with the store on disk flushed after every step (write-through: every
memory change in SQLite and FAISS before the next step); and with an in-memory SQLite store
flushed after every step. Times where a step goes: replay draw, update, memory write (RAM),
flush (keys + store). Prints a table and writes bench/results/agent.json and agent.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import streams  # noqa: E402
from bench.results_table import write_table  # noqa: E402
from lifelong.config import RunConfig  # noqa: E402
from lifelong.learner.agent import Agent, StreamSpec  # noqa: E402


def timed(obj, name: str, clock: dict) -> None:
    """Wrap obj.name so its seconds add up in clock[name]."""
    fn = getattr(obj, name)

    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            clock[name] += time.perf_counter() - t

    setattr(obj, name, wrapper)


def bench(stream, cfg: RunConfig, folder: Path | None, batches: int, flush_each_step: bool) -> dict:
    spec = StreamSpec(stream.input_shape, stream.n_classes, stream.task_aware, stream.scenario)
    store = Agent.memory_for(cfg, spec, folder)
    agent = Agent(cfg, spec, store)
    clock: dict[str, float] = defaultdict(float)
    timed(agent, "_update_batch", clock)  # the replay draw and gather, the task masks
    timed(agent.memory, "add", clock)
    timed(agent, "flush_memory", clock)
    timed(agent.method, "update", clock)  # the method's step, whichever method it is
    xs = [e for e in stream]
    pos, done, t0 = 0, 0, time.perf_counter()
    for e in xs:
        for b in range(0, e.n_train, cfg.batch_size):
            if done == batches:
                break
            agent.observe(
                e.x_train[b : b + cfg.batch_size],
                e.y_train[b : b + cfg.batch_size],
                task_id=e.task_id,
                experience=e.id,
                position=pos,
            )
            pos += cfg.batch_size
            done += 1
            if flush_each_step:
                agent.flush_memory()
    agent.flush_memory()
    total = time.perf_counter() - t0
    store.close()
    ms = {k: 1e3 * v / done for k, v in clock.items()}
    return {
        "total_ms_per_step": 1e3 * total / done,
        "samples_per_s": pos / total,
        "replay_ms": ms.get("_update_batch", 0.0),
        "update_ms": ms.get("update", 0.0),
        "write_ms": ms.get("add", 0.0),
        "flush_ms": ms.get("flush_memory", 0.0),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--stream", default="split-mnist5k")
    ap.add_argument("--batches", type=int, default=400)
    args = ap.parse_args()
    torch.set_num_threads(1)
    stream = streams.get_stream(args.stream, seed=0)
    rows = []
    for rates in (False, True):
        mode = "learned rates" if rates else "replay"
        cfg = RunConfig(stream=args.stream, learned_rates=rates, progress=False).validate()
        with tempfile.TemporaryDirectory() as tmp:
            behind = bench(stream, cfg, Path(tmp) / "a", args.batches, flush_each_step=False)
            through = bench(stream, cfg, Path(tmp) / "b", args.batches, flush_each_step=True)
        ram = bench(stream, cfg, None, args.batches, flush_each_step=True)
        for where, r in (
            ("disk, flushed at checkpoints", behind),
            ("disk, flushed every step", through),
            ("RAM SQLite, flushed every step", ram),
        ):
            rows.append({"mode": mode, "store": where, **r})
        rows.append(
            {
                "mode": mode,
                "store": "every step / at checkpoints",
                "total_ms_per_step": through["total_ms_per_step"] / behind["total_ms_per_step"],
            }
        )
    cols = [
        "mode",
        "store",
        "total_ms_per_step",
        "samples_per_s",
        "replay_ms",
        "update_ms",
        "write_ms",
        "flush_ms",
    ]
    write_table("agent", rows, cols)


if __name__ == "__main__":
    main()
