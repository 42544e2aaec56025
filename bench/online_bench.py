"""What the online accuracy measure costs the step: the agent's step on the first batches of
split-mnist5k with the measure and without it (no forward pass of its own, no counting),
interleaved in blocks in one run so the machine's drift hits both alike. Plain replay reads
the measure from its update's own forward; La-MAML (whose update returns looked-ahead
logits) pays a forward pass.

    python bench/online_bench.py [--batches 400] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import streams  # noqa: E402
from lifelong.config import RunConfig  # noqa: E402
from lifelong.learner import agent as agent_module  # noqa: E402
from lifelong.learner.agent import Agent, StreamSpec  # noqa: E402

CORRECT = agent_module._correct


def step_ms(measure: bool, batches: int, rates: bool) -> float:
    s = streams.get_stream("split-mnist5k", seed=0)
    cfg = RunConfig(seed=0, learned_rates=rates, gate=False)  # the head: its own measure
    spec = StreamSpec(s.input_shape, s.n_classes, s.task_aware, s.scenario)
    agent = Agent(cfg, spec, Agent.memory_for(cfg, spec))
    if not measure:  # no forward pass of its own and no counting: the step alone
        agent.method.logits_before_update = True
        agent_module._correct = lambda logits, y, mask: 0
    else:
        agent_module._correct = CORRECT
    x_all = torch.cat([e.x_train for e in s])
    y_all = torch.cat([e.y_train for e in s])
    t = time.perf_counter()
    for b in range(batches):
        x, y = x_all[10 * b : 10 * b + 10], y_all[10 * b : 10 * b + 10]
        agent.observe(x, y, checked=True)
    return 1000 * (time.perf_counter() - t) / batches


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print("| agent | step ms, measure on | step ms, off | on / off |\n|---|---|---|---|")
    for rates in (False, True):
        on, off = [], []
        for _ in range(args.rounds):
            on.append(step_ms(True, args.batches, rates))
            off.append(step_ms(False, args.batches, rates))
        a, b = sorted(on)[len(on) // 2], sorted(off)[len(off) // 2]
        name = "learned rates (La-MAML)" if rates else "default (replay)"
        print(f"| {name} | {a:.3f} | {b:.3f} | {a / b:.3f} |")
    print(f"(median of {args.rounds} interleaved rounds of {args.batches} batches, 1 thread)")


if __name__ == "__main__":
    main()
