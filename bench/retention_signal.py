"""What each of a batch's updates is worth to the tasks already learned (issue #27, item 4).

``compute_signal.py`` found that the next batch sees no value in the default's updates after
the first, while they are worth 0.045 of final accuracy on split-mnist5k: their value was
guessed to be retention. This measures it. The default agent runs the stream in the waiting
protocol (5 updates a batch); on every ``--every``-th batch after the first experience, the
loss on held-out examples of every task seen so far (a fixed 300 of each test set) is read
before the batch's first update and after each update. The drop per update is split into
the earlier tasks' (their mean) and the current task's, and the task-balanced mean of all
seen tasks (what average accuracy at the end weighs). Test sets are an oracle here: a
controller would read memories it holds out of replay instead.

    python bench/retention_signal.py [--streams split-mnist5k,permuted-mnist5k] [--seeds 0,1]

Prints a table per stream (mean and standard error over the batches measured) and writes
bench/results/retention_signal.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT = 300  # examples of each test set


class PerUpdateLoss:
    """Run hooks that wrap the agent's update to read the held-out losses around each."""

    def __init__(self, held_out: list[tuple[torch.Tensor, torch.Tensor]], every: int) -> None:
        self.held_out, self.every = held_out, every
        self.batches: list[tuple[int, np.ndarray]] = []  # (experience, losses[update, task])

    def started(self, agent, progress) -> None:
        update, observe = agent.method.update, agent.observe
        state = {"batch": 0, "experience": 0, "losses": None}

        def read() -> np.ndarray:
            model, seen = agent.model, state["experience"] + 1
            was_training = model.training
            model.eval()
            with torch.no_grad():
                out = [float(F.cross_entropy(model(x), y)) for x, y in self.held_out[:seen]]
            model.train(was_training)
            return np.array(out)

        def measured_update(batch):
            out = update(batch)
            if state["losses"] is not None:
                state["losses"].append(read())
            return out

        def measured_observe(x, y, **kw):
            state["experience"] = kw.get("experience", 0)
            state["batch"] += 1
            due = state["experience"] > 0 and state["batch"] % self.every == 0
            state["losses"] = [read()] if due else None
            out = observe(x, y, **kw)
            if due:
                self.batches.append((state["experience"], np.stack(state["losses"])))
            return out

        agent.method.update, agent.observe = measured_update, measured_observe


def drops(batches: list[tuple[int, np.ndarray]]) -> dict[str, np.ndarray]:
    """(batches, updates) loss drops of update j: earlier tasks, current task, all seen."""
    old, current, balanced = [], [], []
    for e, losses in batches:
        d = losses[:-1] - losses[1:]  # (updates, tasks seen)
        old.append(d[:, :e].mean(1))
        current.append(d[:, e])
        balanced.append(d.mean(1))
    return {
        "earlier_tasks": np.array(old),
        "current_task": np.array(current),
        "all_seen": np.array(balanced),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", default="split-mnist5k,permuted-mnist5k")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--every", type=int, default=4, help="measure every n-th batch")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from lifelong.config import RunConfig
    from lifelong.runner import RunHooks, run
    from streams import get_stream

    class Hooks(PerUpdateLoss, RunHooks):
        pass

    out = {}
    for stream_name in args.streams.split(","):
        batches = []
        for seed in (int(s) for s in args.seeds.split(",")):
            held_out = []
            for e in get_stream(stream_name, seed=seed):
                pick = torch.randperm(e.n_test, generator=torch.Generator().manual_seed(seed))
                held_out.append((e.x_test[pick[:HELD_OUT]], e.y_test[pick[:HELD_OUT]]))
            hooks = Hooks(held_out, args.every)
            cfg = RunConfig(stream=stream_name, seed=seed, progress=False, tensorboard=False)
            with tempfile.TemporaryDirectory() as folder:
                run(cfg, folder, hooks=hooks, echo=lambda m: None)
            batches += hooks.batches
        d = drops(batches)
        n = len(batches)
        out[stream_name] = {
            name: {
                "per_update": v.mean(0).tolist(),
                "standard_error": (v.std(0) / np.sqrt(n)).tolist(),
                "after_k_updates": np.cumsum(v.mean(0)).tolist(),
            }
            for name, v in d.items()
        }
        title = f"{stream_name}, seeds {args.seeds}: held-out loss drop per update, nats"
        print(f"\n{title} ({n} batches)")
        print("| update | earlier tasks | current task | all seen (task-balanced) |")
        print("|---|---|---|---|")
        mine = out[stream_name]
        for j in range(d["all_seen"].shape[1]):
            cells = " | ".join(
                f"{mine[k]['per_update'][j]:+.4f} ({mine[k]['standard_error'][j]:.4f})"
                for k in ("earlier_tasks", "current_task", "all_seen")
            )
            print(f"| {j + 1} | {cells} |")
        cells = " | ".join(
            " / ".join(f"{c:+.3f}" for c in out[stream_name][k]["after_k_updates"])
            for k in ("earlier_tasks", "current_task", "all_seen")
        )
        print(f"| after 1 / 2 / ... updates | {cells} |")
    path = ROOT / "bench" / "results" / "retention_signal.json"
    path.write_text(
        json.dumps({"seeds": args.seeds, "every": args.every, "streams": out}, indent=2)
    )


if __name__ == "__main__":
    main()
