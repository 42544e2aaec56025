"""Step profile: where one incoming batch's time goes, and closed-form gradients against autograd.

    python bench/step_bench.py [--stream split-mnist5k] [--calls 200]

At Avalanche's compute (one update per incoming batch of 10, replay 10) on a memory already
full, times each part of ``Agent.observe`` and, side by side, the same update computed with
autograd: plain replay (forward, loss, backward, clip, SGD) and the controller's first-order
meta-gradients. Each figure is the best of 7 rounds of ``--calls`` calls, the rounds of the
two ways interleaved, so machine noise hits both alike. Prints a table and writes
bench/results/step.json and step.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import streams  # noqa: E402
from bench.results_table import write_table  # noqa: E402
from lifelong.config import RunConfig  # noqa: E402
from lifelong.learner.agent import Agent, StreamSpec  # noqa: E402
from lifelong.learner.controller import meta_grads_autograd, meta_grads_first_order  # noqa: E402

ROUNDS = 7


def best_us(fns: dict, calls: int) -> dict:
    """Microseconds a call: the best round of each, rounds interleaved."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(ROUNDS):
        for name, fn in fns.items():
            t = time.perf_counter()
            for _ in range(calls):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t) / calls * 1e6)
    return best


def warmed_agent(stream, controller: bool) -> Agent:
    cfg = RunConfig(stream=stream.name, controller=controller, iters=1, replay_batch=10)
    spec = StreamSpec(stream.input_shape, stream.n_classes, stream.task_aware, stream.scenario)
    agent = Agent(cfg.validate(), spec, Agent.memory_for(cfg, spec))
    e, pos = stream[0], 0
    for _ in range(2):  # 160 batches: the memory of 500 is full, the write policy evicting
        for b in range(0, e.n_train, 10):
            agent.observe(
                e.x_train[b : b + 10], e.y_train[b : b + 10], task_id=e.task_id, position=pos
            )
            pos += 10
    return agent


def profile(stream, controller: bool, calls: int) -> list[dict]:
    agent = warmed_agent(stream, controller)
    e = stream[0]
    x, y = e.x_train[:10], e.y_train[:10]
    rng = np.random.default_rng(0)
    update = agent._update_batch(x, y, e.task_id)
    loss_of = agent.method.loss(update)
    x_mem, y_mem, z_mem = update.x_mem, update.y_mem, update.z_mem
    batch = (x, y, x_mem, y_mem)
    parts = {
        "input checks": lambda: agent.check_data(x, y, 0, 0),
        "replay draw (class-balanced) + gather": lambda: agent.memory.batch(
            agent.memory.sample(10, "class-balanced", rng)
        ),
        "memory write (reservoir plan + copy)": lambda: agent.memory.add(
            x, y, e.task_id, 0, 0, z_mem
        ),
    }
    mode = "controller" if controller else "replay"
    if not controller:  # the plain update leaves the weights as they are: every call alike
        agent.method.settings.lr = 0.0
    if controller:
        args = (agent.model, agent.rates, loss_of, *batch, agent.method.settings.inner_steps, 2.0)
        pair = {
            "meta-gradients, closed form": lambda: meta_grads_first_order(*args),
            "meta-gradients, autograd": lambda: meta_grads_autograd(*args, create_graph=False),
        }
    else:
        pair = {
            "update, closed form": lambda: agent.method._closed_form_step(loss_of, update),
            "update, autograd": lambda: agent.method._autograd_step(loss_of, update),
        }
    parts["prediction controller (embed incoming + replay, learn the mix)"] = lambda: (
        agent._gate_step(update, None)
    )
    with torch.no_grad():
        live_logits = agent.model(x)
    average = agent.average
    parts["weight average (score the incoming batch, take the weights)"] = lambda: average.step(
        agent.model, restart=average.watch(agent.model, x, y, live_logits)
    )

    def observe_head_alone() -> None:
        gate, agent.gate = agent.gate, None
        try:
            agent.observe(x, y, task_id=e.task_id, position=0)
        finally:
            agent.gate = gate

    whole = {
        "whole observe (incl. the update)": lambda: agent.observe(
            x, y, task_id=e.task_id, position=0
        ),
        "whole observe, prediction controller off": observe_head_alone,
    }
    times = {**best_us(parts, calls), **best_us(pair, calls), **best_us(whole, calls)}
    closed, auto = list(pair)
    rows = [{"mode": mode, "part": k, "us_per_call": v} for k, v in times.items()]
    rows.append(
        {"mode": mode, "part": "autograd / closed form", "ratio": times[auto] / times[closed]}
    )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--stream", default="split-mnist5k")
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(1)
    stream = streams.get_stream(args.stream, seed=0)
    rows = profile(stream, False, args.calls) + profile(stream, True, args.calls)

    def cell(v) -> str:
        return "" if v is None else (f"{v:.1f}" if isinstance(v, float) else str(v))

    rows = [{**r, "ratio": f"{r['ratio']:.2f}x" if "ratio" in r else None} for r in rows]
    write_table("step", rows, ["mode", "part", "us_per_call", "ratio"], cell)


if __name__ == "__main__":
    main()
