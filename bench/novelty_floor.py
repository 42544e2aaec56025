"""A replay floor chosen batch by batch from what the stream says now (issue #27, item 4).

On a stream faster than one update with replay, the compute plan keeps at least a quarter
of the incoming batch in replay (``budget.REPLAY_FLOOR``) and lets the batches it has no time
for pass. That won on 13 of 15 stream-rate pairs and lost on split-digits at rates 2 and 4,
where an experience is 36 batches and the learner learns about 10 of each: there, learning
the new classes fast was worth more than keeping the old ones (docs/benchmarks.md). So the
trade is plasticity against stability, and a stream says which it needs now, for free: how
much more of the arriving batches the learner labels wrong than usual (every batch is
answered before it is learned or let pass). This bench plans as before the floor while that error
runs ``MARGIN`` above its slow running mean (new classes, a new domain: learn more of them,
replay cut to fit) and by the rule otherwise (forgetting is the risk).

Arms, each over whole streams in real time, seeds 5-7 (nothing was tuned on them): the plan
before the floor (0), the rule as landed (0.25), and by novelty. Final average accuracy,
mean ± std, and the share of learned batches the floor was off.

    python bench/novelty_floor.py [--streams split-digits,split-mnist5k] [--rates 1.5,2,4]
                                  [--seeds 5-7] [--jobs 2]

Writes bench/results/novelty_floor.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from bench_args import stream_rates, streams_and_seeds

ROOT = Path(__file__).resolve().parents[1]
FAST, SLOW = 0.5, 0.05  # weights of a batch's error in the recent and the usual running means
MARGIN = 0.2  # recent error this far above the usual: the stream is new to the learner
ARMS = ("before the floor", "rule", "by novelty")


class NoveltyFloor:
    """Run hooks (mixed with ``RunHooks``): every arriving batch's online error, learned or
    answered, into a recent and a usual running mean; the floor for the next plan from them."""

    def __init__(self) -> None:
        self.recent = self.usual = None
        self.counts = (0, 0)  # (right, seen) when last read
        self.off = self.planned = 0

    def clock_started(self, clock) -> None:
        answer = clock.answer

        def answered(agent, x, y, task_id):
            answer(agent, x, y, task_id)
            self._read(agent, clock)

        clock.answer = answered
        self.clock = clock

    def stepped(self, agent, progress) -> None:
        self._read(agent, self.clock)

    def _read(self, agent, clock) -> None:
        right = agent.online_correct + clock.answered_correct
        seen = agent.online_seen + clock.answered_seen
        if seen == self.counts[1]:
            return
        error = 1 - (right - self.counts[0]) / (seen - self.counts[1])
        self.counts = (right, seen)
        if self.usual is None:
            self.recent = self.usual = error
            return
        self.recent += FAST * (error - self.recent)
        self.usual += SLOW * (error - self.usual)

    def novel(self) -> bool:
        """Whether the stream is new to the learner now (the floor off for the next plan)."""
        self.planned += 1
        novel = self.usual is not None and self.recent > self.usual + MARGIN
        self.off += novel
        return novel


def run_arm(args: tuple[str, float, int, str]) -> dict:
    stream, rate, seed, arm = args
    sys.path.insert(0, str(ROOT / "bench"))
    from probe_signal import plan_before_the_floor

    from lifelong.config import RunConfig
    from lifelong.learner import budget
    from lifelong.runner import RunHooks, run

    class Hooks(NoveltyFloor, RunHooks):
        pass

    hooks, rule = Hooks(), budget.plan
    if arm == ARMS[0]:
        budget.plan = plan_before_the_floor
    elif arm == ARMS[2]:

        def by_novelty(agent, incoming, room):
            plan = plan_before_the_floor if hooks.novel() else rule
            return plan(agent, incoming, room)

        budget.plan = by_novelty
    cfg = RunConfig(
        stream=stream, seed=seed, real_time=True, stream_rate=rate, progress=False, threads=1
    )
    try:
        with tempfile.TemporaryDirectory() as folder:
            summary = run(cfg, folder, hooks=hooks, echo=lambda m: None).summary
    finally:  # the next job in this process runs its own arm
        budget.plan = rule
    return {
        "stream": stream,
        "rate": rate,
        "seed": seed,
        "arm": arm,
        "final_accuracy": summary["average_accuracy"],
        "learned_share": summary["learned_share"],
        "floor_off_share": hooks.off / hooks.planned if hooks.planned else 0.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", default="split-mnist5k,split-digits,blurry-mnist5k")
    ap.add_argument("--rates", default="1.5,2,4")
    ap.add_argument("--seeds", default="5-7")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    streams, seeds = streams_and_seeds("novelty_floor", args.streams, args.seeds)
    rates = stream_rates("novelty_floor", args.rates)
    jobs = [(s, r, seed, a) for s in streams for r in rates for seed in seeds for a in ARMS]
    with ProcessPoolExecutor(max(1, args.jobs)) as pool:
        runs = list(pool.map(run_arm, jobs))
    print("| stream | rate | before the floor | rule | by novelty | floor off |")
    print("|---|---|---|---|---|---|")
    table = {}
    for stream in streams:
        for rate in rates:
            cell = {}
            for arm in ARMS:
                key = (stream, rate, arm)
                mine = [r for r in runs if (r["stream"], r["rate"], r["arm"]) == key]
                acc = [r["final_accuracy"] for r in mine]
                cell[arm] = {
                    "mean": float(np.mean(acc)),
                    "std": float(np.std(acc)),
                    "floor_off": float(np.mean([r["floor_off_share"] for r in mine])),
                }
            table[f"{stream}@{rate:g}"] = cell
            best = max(c["mean"] for c in cell.values())
            text = [
                (f"**{c['mean']:.3f}**" if c["mean"] == best else f"{c['mean']:.3f}")
                + f" ± {c['std']:.3f}"
                for c in cell.values()
            ]
            print(
                f"| {stream} | {rate:g} | {' | '.join(text)} | {cell[ARMS[2]]['floor_off']:.2f} |",
                flush=True,
            )
    path = ROOT / "bench" / "results" / "novelty_floor.json"
    record = {
        "seeds": seeds,
        "fast": FAST,
        "slow": SLOW,
        "margin": MARGIN,
        "table": table,
        "runs": runs,
    }
    path.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
