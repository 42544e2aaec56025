"""What the next batch says an update was worth (issue #27, item 4: a controller that learns
how many updates to make per batch needs a signal of their value).

The default agent runs the README's stream in the waiting protocol (5 updates a batch). Its
weights are kept before and after a batch's first update and before and after its last;
when the next batch arrives, before the agent learns it, its loss is read under each. The
difference is what that update was worth on data the agent has not seen: the paired,
low-noise form of "gain in online accuracy per FLOP".

    python bench/compute_signal.py [--streams split-mnist5k,permuted-mnist5k] [--seed 0]

Prints the gains (mean, standard error, per quarter of the stream) and writes
bench/results/compute_signal.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]


class UpdateValue:
    """Run hooks that wrap the agent's step to keep the weights around its first and last
    updates, and read the next batch's loss under them before the agent learns it."""

    def __init__(self) -> None:
        self.kept: dict | None = None
        self.gains: list[tuple[float, float, float]] = []  # first, last, all updates

    def started(self, agent, progress) -> None:
        self.agent, update, observe = agent, agent.method.update, agent.observe
        counter = {"i": 0}
        current: dict = {}

        def weights() -> dict:
            return copy.deepcopy(agent.model.state_dict())

        def kept_update(batch):
            i = counter["i"]
            counter["i"] += 1
            if i == 0:
                current["before_first"] = weights()
            if i == agent.iters - 1:
                current["before_last"] = weights()
            out = update(batch)
            if i == 0:
                current["after_first"] = weights()
            return out

        def measured_observe(x, y, **kw):
            if self.kept is not None and agent.iters >= 2:
                self._measure(x, y)
            current.clear()
            counter["i"] = 0
            out = observe(x, y, **kw)
            current["after_last"] = weights()
            self.kept = dict(current)
            return out

        agent.method.update, agent.observe = kept_update, measured_observe

    @torch.no_grad()
    def _measure(self, x, y) -> None:
        model = self.agent.model
        live = copy.deepcopy(model.state_dict())
        model.eval()
        loss = {}
        for name, state in self.kept.items():
            model.load_state_dict(state)
            loss[name] = float(F.cross_entropy(model(torch.as_tensor(x)), torch.as_tensor(y)))
        model.load_state_dict(live)
        model.train()
        self.gains.append(
            (
                loss["before_first"] - loss["after_first"],
                loss["before_last"] - loss["after_last"],
                loss["before_first"] - loss["after_last"],
            )
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", default="split-mnist5k,permuted-mnist5k")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from lifelong.config import RunConfig
    from lifelong.runner import RunHooks, run

    class Hooks(UpdateValue, RunHooks):
        pass

    out = {}
    for stream in args.streams.split(","):
        hooks = Hooks()
        cfg = RunConfig(stream=stream, seed=args.seed, progress=False, tensorboard=False)
        with tempfile.TemporaryDirectory() as folder:
            run(cfg, folder, hooks=hooks, echo=lambda m: None)
        g = np.array(hooks.gains)
        n, q = len(g), len(g) // 4
        out[stream] = {
            name: {
                "mean": float(g[:, c].mean()),
                "standard_error": float(g[:, c].std() / np.sqrt(n)),
                "per_batch_std": float(g[:, c].std()),
                "by_quarter": [float(g[k * q : (k + 1) * q, c].mean()) for k in range(4)],
            }
            for c, name in enumerate(("first_update", "last_update", "all_updates"))
        }
        print(f"\n{stream}, seed {args.seed}: loss drop on the next batch, nats ({n} batches)")
        print("| update | mean | s.e. | by quarter of the stream |")
        print("|---|---|---|---|")
        for name, v in out[stream].items():
            quarters = " / ".join(f"{m:+.4f}" for m in v["by_quarter"])
            print(f"| {name} | {v['mean']:+.4f} | {v['standard_error']:.4f} | {quarters} |")
    path = ROOT / "bench" / "results" / "compute_signal.json"
    path.write_text(json.dumps({"seed": args.seed, "streams": out}, indent=2))


if __name__ == "__main__":
    main()
