"""Can a controller learn, within one stream, which side of the replay trade a fast stream
sits on? (issue #27, item 4.)

On a stream faster than one update with replay, the compute plan keeps at least a quarter of
the incoming batch in replay (``budget.REPLAY_FLOOR``) and lets the batches it has no time
for pass. That was better on 13 of 15 stream-rate pairs and worse on split-digits at rates
2 and 4 (docs/benchmarks.md), so a learned controller would choose the floor per stream. Its
reward has to be measured on data the learner has not trained on, and a stream that does not
wait makes some: the batches the busy learner answers and never learns. This bench keeps a
reservoir of them (``PROBE`` examples, ``PER_BATCH`` from each) and, every ``BLOCK`` batches
the stream reveals (at the first learned batch after), reads the paired change of accuracy
on the reservoir as it was at the block's start: what a bandit over the floor would be
rewarded with for that block.

Each arm (a floor) runs the whole stream fixed, so the rewards it earns are its own. Printed
per stream and rate: final accuracy per arm (the truth a controller should find), the mean
block reward per arm, its per-block standard deviation, the blocks the stream gives, and the
blocks a bandit would need to tell the two arms apart at two standard errors. The probe's
forward passes are not charged to the clock here (a controller would pay them).

    python bench/probe_signal.py [--streams split-mnist5k,split-digits] [--rates 1.5,2,4]
                                 [--seeds 5,6,7]

Writes bench/results/probe_signal.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from bench_args import stream_rates, streams_and_seeds

ROOT = Path(__file__).resolve().parents[1]
PROBE, PER_BATCH, BLOCK = 200, 2, 20  # BLOCK: batches revealed (stream time), not learned
FLOORS = (0.0, 0.25)  # 0: the plan before the floor (38fb51c^), 0.25: the rule as it is


class SkippedProbe:
    """Run hooks (mixed with ``RunHooks`` where run): a reservoir of examples from batches
    the learner answered and never learned, and the paired accuracy change on it over each
    block of learned batches."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.x: list[torch.Tensor] = []
        self.y: list[torch.Tensor] = []
        self.offered = self.block = 0
        self.clock = None
        self.snapshot: tuple[torch.Tensor, torch.Tensor, float] | None = None
        self.rewards: list[float] = []

    def clock_started(self, clock) -> None:
        if clock is None:
            return
        self.clock, answer = clock, clock.answer

        def answered(agent, x, y, task_id):
            answer(agent, x, y, task_id)
            for i in range(min(PER_BATCH, len(y))):
                self._offer(x[i].cpu(), y[i].cpu())

        clock.answer = answered

    def _offer(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.offered += 1
        if len(self.y) < PROBE:
            self.x.append(x)
            self.y.append(y)
            return
        j = int(self.rng.integers(self.offered))
        if j < PROBE:
            self.x[j], self.y[j] = x, y

    def stepped(self, agent, progress) -> None:
        block = self.clock.arrived // BLOCK
        if block == self.block or len(self.y) < PROBE // 4:
            return
        self.block = block
        if self.snapshot is not None:
            x, y, before = self.snapshot
            self.rewards.append(agent.accuracy(x, y) - before)
        x, y = torch.stack(self.x), torch.stack(self.y)
        self.snapshot = (x, y, agent.accuracy(x, y))


def plan_before_the_floor(agent, incoming: int, room: float) -> tuple[int, int]:
    """The plan before ``REPLAY_FLOOR``: replay cut down to one memory to fit, and where
    not even that fits, one update of one memory, overrunning the interval."""
    from lifelong.learner import budget

    held = len(agent.memory)
    least = 1 if held else 0
    best = None  # (rows trained, -updates, replayed)
    for updates in range(1, agent.cfg.iters + 1):
        for replayed in range(min(agent.cfg.replay_batch, held), least - 1, -1):
            if budget.cost_of(agent, incoming, updates, replayed) <= room:
                rows = updates * agent.method.rows_for(incoming, replayed)
                option = (rows, -updates, replayed)
                best = option if best is None or option > best else best
                break
    return (1, least) if best is None else (-best[1], best[2])


def run_arm(stream: str, rate: float, seed: int, floor: float) -> dict:
    from lifelong.config import RunConfig
    from lifelong.learner import budget
    from lifelong.runner import RunHooks, run

    class Hooks(SkippedProbe, RunHooks):
        pass

    kept = budget.plan
    if not floor:
        budget.plan = plan_before_the_floor
    hooks = Hooks(seed)
    cfg = RunConfig(
        stream=stream,
        seed=seed,
        real_time=True,
        stream_rate=rate,
        progress=False,
        tensorboard=False,
    )
    try:
        with tempfile.TemporaryDirectory() as folder:
            result = run(cfg, folder, hooks=hooks, echo=lambda m: None)
    finally:
        budget.plan = kept
    return {
        "final_accuracy": result.summary["average_accuracy"],
        "rewards": hooks.rewards,
    }


def summarise(arms: dict[float, list[dict]]) -> dict:
    """Per arm: final accuracy and block reward over seeds; the blocks a bandit needs."""
    out: dict = {"arms": {}}
    for floor, runs in arms.items():
        rewards = np.concatenate([r["rewards"] for r in runs])
        out["arms"][str(floor)] = {
            "final_accuracy": float(np.mean([r["final_accuracy"] for r in runs])),
            "final_std": float(np.std([r["final_accuracy"] for r in runs])),
            "reward_mean": float(rewards.mean()),
            "reward_std": float(rewards.std()),
            "blocks_per_stream": float(np.mean([len(r["rewards"]) for r in runs])),
        }
    a, b = (out["arms"][str(f)] for f in FLOORS)
    gap = b["reward_mean"] - a["reward_mean"]
    sd = max(a["reward_std"], b["reward_std"])
    # blocks per arm for the gap to be two standard errors of the difference of two means
    out["blocks_needed_per_arm"] = float(2 * (2 * sd / abs(gap)) ** 2) if gap else float("inf")
    out["reward_picks"] = str(FLOORS[1] if gap > 0 else FLOORS[0])
    truth = b["final_accuracy"] - a["final_accuracy"]
    out["truth_picks"] = str(FLOORS[1] if truth > 0 else FLOORS[0])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", default="split-mnist5k,split-digits,blurry-mnist5k")
    ap.add_argument("--rates", default="1.5,2,4")
    ap.add_argument("--seeds", default="5,6,7")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    streams, seeds = streams_and_seeds("probe_signal", args.streams, args.seeds)
    rates = stream_rates("probe_signal", args.rates)
    table = {}
    print(
        "| stream | rate | final acc floor 0 / 0.25 | block reward 0 / 0.25 (std) | blocks "
        "a stream | blocks needed an arm | reward picks | truth picks |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for stream in streams:
        for rate in rates:
            arms = {f: [run_arm(stream, rate, s, f) for s in seeds] for f in FLOORS}
            s = table[f"{stream}@{rate:g}"] = summarise(arms)
            a, b = (s["arms"][str(f)] for f in FLOORS)
            print(
                f"| {stream} | {rate:g} | {a['final_accuracy']:.3f} / {b['final_accuracy']:.3f} "
                f"| {a['reward_mean']:+.4f} / {b['reward_mean']:+.4f} "
                f"({max(a['reward_std'], b['reward_std']):.3f}) "
                f"| {a['blocks_per_stream']:.0f} | {s['blocks_needed_per_arm']:.0f} "
                f"| {s['reward_picks']} | {s['truth_picks']} |",
                flush=True,
            )
    path = ROOT / "bench" / "results" / "probe_signal.json"
    path.write_text(
        json.dumps({"seeds": seeds, "probe": PROBE, "block": BLOCK, "results": table}, indent=2)
    )


if __name__ == "__main__":
    main()
