"""Does spending a batch's updates where the stream surprises the learner pay? (issue #27,
item 4: a controller that chooses the updates per batch.)

Where the stream waits, more updates always help (``ours-1x`` against the default), so a
controller can only move a fixed budget around. This one moves it by surprise: after each
batch, the share of it the learner labelled wrong before learning it (its online error,
free), against a running mean of that share; the next batch gets ``iters`` scaled by the
relative excess (more after a shift, fewer when the stream is settled), from 1 to 2 x
``iters``, with a credit that keeps the mean at ``iters``. Same seeds, same compute, the
default against it.

    python bench/surprise_updates.py [--streams split-mnist5k,split-digits] [--seeds 3-7]

Writes bench/results/surprise_updates.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from bench_args import streams_and_seeds

ROOT = Path(__file__).resolve().parents[1]
DECAY = 0.9  # of the running mean error


class SurpriseUpdates:
    """Run hooks (mixed with ``RunHooks`` where run): the next batch's updates from this
    batch's online error."""

    def __init__(self) -> None:
        self.hits = 0
        self.seen = 0
        self.mean_error: float | None = None
        self.credit = 0.0  # updates owed to (positive) or taken from the budget
        self.chosen: list[int] = []

    def stepped(self, agent, progress) -> None:
        hits, seen = agent.online_correct, agent.online_seen
        error = 1 - (hits - self.hits) / max(seen - self.seen, 1)
        self.hits, self.seen = hits, seen
        m = self.mean_error = (
            error if self.mean_error is None else (DECAY * self.mean_error + (1 - DECAY) * error)
        )
        base = agent.cfg.iters
        want = base * (1 + (error - m) / max(m, 0.05)) + self.credit / 2
        updates = int(np.clip(round(want), 1, 2 * base))
        self.credit += base - updates
        agent.iters = updates
        self.chosen.append(updates)


def final_accuracy(stream: str, seed: int, hooks) -> float:
    from lifelong.config import RunConfig
    from lifelong.runner import run

    cfg = RunConfig(stream=stream, seed=seed, progress=False, tensorboard=False)
    with tempfile.TemporaryDirectory() as folder:
        return run(cfg, folder, hooks=hooks, echo=lambda m: None).summary["average_accuracy"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--streams", default="split-mnist5k,split-digits,blurry-mnist5k,split-task-mnist5k"
    )
    ap.add_argument("--seeds", default="3-7")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from lifelong.runner import RunHooks

    class Hooks(SurpriseUpdates, RunHooks):
        pass

    streams, seeds = streams_and_seeds("surprise_updates", args.streams, args.seeds)
    out = {}
    print("| stream | default | by surprise | mean updates a batch |\n|---|---|---|---|")
    for stream in streams:
        default = [final_accuracy(stream, s, None) for s in seeds]
        chosen, moved = [], []
        for s in seeds:
            hooks = Hooks()
            moved.append(final_accuracy(stream, s, hooks))
            chosen.append(float(np.mean(hooks.chosen)))
        out[stream] = {"default": default, "by_surprise": moved, "mean_updates": chosen}
        print(
            f"| {stream} | {np.mean(default):.3f} ± {np.std(default):.3f} "
            f"| {np.mean(moved):.3f} ± {np.std(moved):.3f} | {np.mean(chosen):.2f} |",
            flush=True,
        )
    path = ROOT / "bench" / "results" / "surprise_updates.json"
    path.write_text(json.dumps({"seeds": seeds, "streams": out}, indent=2))


if __name__ == "__main__":
    main()
