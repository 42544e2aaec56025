"""Step profile: where one incoming batch's time goes, and closed-form gradients against autograd.

    python bench/step_bench.py [--stream split-mnist5k] [--calls 200] [--device cpu]

At Avalanche's compute (one update per incoming batch of 10, replay 10, ours-1x's step) on a
memory already full, times each part of ``Agent.observe`` and, side by side, the same update
computed with autograd: plain replay (forward, loss, backward, clip, SGD) and La-MAML's
learned rates' first-order meta-gradients. Each figure is the best of 7 rounds of ``--calls``
calls, the rounds of all parts interleaved, so machine noise hits them alike. The goal of
issue #24 is the last ratio: the whole observe against the update alone. Prints a table and
writes bench/results/step.json and step.md.
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
from bench.results_table import write_table  # noqa: E402
from lifelong.config import RunConfig  # noqa: E402
from lifelong.learner.agent import Agent, StreamSpec  # noqa: E402
from lifelong.learner.learned_rates import meta_grads_autograd, meta_grads_first_order  # noqa: E402
from lifelong.learner.weight_average import EVERY  # noqa: E402

ROUNDS = 7
OURS_1X = dict(iters=1, replay_batch=10, lr=0.3, grad_clip=1.0)


def best_us(fns: dict, calls: int, device: torch.device) -> dict:
    """Microseconds a call: the best round of each, rounds interleaved."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(ROUNDS):
        for name, fn in fns.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t = time.perf_counter()
            for _ in range(calls):
                fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            best[name] = min(best[name], (time.perf_counter() - t) / calls * 1e6)
    return best


def warmed_agent(stream, device: str, **overrides) -> Agent:
    cfg = RunConfig(stream=stream.name, device=device, **{**OURS_1X, **overrides}).validate()
    spec = StreamSpec(stream.input_shape, stream.n_classes, stream.task_aware, stream.scenario)
    agent = Agent(cfg, spec, Agent.memory_for(cfg, spec))
    e, pos = stream[0], 0
    for _ in range(2):  # 160 batches: the memory of 500 is full, the write policy evicting
        for b in range(0, e.n_train, 10):
            x, y = e.x_train[b : b + 10], e.y_train[b : b + 10]
            agent.observe(x, y, task_id=e.task_id, position=pos, checked=True)
            pos += 10
    return agent


def profile(stream, learned_rates: bool, calls: int, device: str) -> list[dict]:
    agent = warmed_agent(stream, device, learned_rates=learned_rates)
    dev = agent.device
    e = stream[0]
    x, y = e.x_train[:10].to(dev), e.y_train[:10].to(dev)
    memory = agent.memory
    u = agent._draw_uniforms(10)
    sizes = memory.group_sizes("class-balanced")
    update = agent._update_batch(x, y, e.task_id, u, 0, sizes)
    loss_of = agent.method.loss(update)
    x_mem, y_mem = update.x_mem, update.y_mem
    n = len(memory)
    parts = {
        "input checks (once an experience in a run)": lambda: agent.check_data(x, y, 0, 0),
        "replay draw (class-balanced) + gather": lambda: memory.replay(
            memory.sample(10, u[:n], memory.group_sizes("class-balanced"))
        ),
        "memory write (reservoir)": lambda: memory.add(x, y, e.task_id, 0, 0, None, u[n:]),
    }
    mode = "learned rates" if learned_rates else "replay"
    if learned_rates:
        args = (agent.model, agent.rates, loss_of, x, y, x_mem, y_mem, 2, 2.0)
        pair = {
            "meta-gradients, closed form": lambda: meta_grads_first_order(*args),
            "meta-gradients, autograd": lambda: meta_grads_autograd(*args, create_graph=False),
        }
    else:  # the plain update with a zero step leaves the weights as they are: calls alike
        agent.method.settings.lr = 0.0
        pair = {
            "update, closed form": lambda: agent.method._closed_form_step(loss_of, update),
            "update, autograd": lambda: agent.method._autograd_step(loss_of, update),
        }
        step = agent.method.update(update)
        parts["prediction controller (from the update's forward: learn the mix)"] = lambda: (
            agent._gate_step(update, None, step.features, step.all_logits)
        )
    average = agent.average
    live = agent.forward.logits(x)
    parts[f"weight average (watch + take; every {EVERY} steps)"] = lambda: average.update(
        agent.model, x, y, live
    )

    def observe_without(**off):
        saved = {k: getattr(agent, k) for k in off}

        def call() -> None:
            for k in off:
                setattr(agent, k, None)
            try:
                agent.observe(x, y, task_id=e.task_id, position=0, checked=True)
            finally:
                for k, v in saved.items():
                    setattr(agent, k, v)

        return call

    whole = {
        "whole observe (incl. the update)": lambda: agent.observe(
            x, y, task_id=e.task_id, position=0, checked=True
        ),
        "whole observe, prediction controller off": observe_without(gate=None),
        "whole observe, weight average off": observe_without(average=None),
    }
    times = {
        **best_us(parts, calls, dev),
        **best_us(pair, calls, dev),
        **best_us(whole, calls, dev),
    }
    closed, auto = list(pair)
    rows = [{"mode": mode, "part": k, "us_per_call": v} for k, v in times.items()]
    rows.append(
        {"mode": mode, "part": "autograd / closed form", "ratio": times[auto] / times[closed]}
    )
    rows.append(
        {
            "mode": mode,
            "part": "whole observe / the update alone (goal <= 1.3x at one update a batch)",
            "ratio": times["whole observe (incl. the update)"] / times[closed],
        }
    )
    return rows


def arithmetic(stream, calls: int, device: str) -> list[dict]:
    """The default's update (10 incoming + 32 replayed rows, closed form) in GFLOP/s, beside
    what this core's matrix product reaches on a large product (its practical peak)."""
    agent = warmed_agent(stream, device, iters=5, replay_batch=32, lr=0.1, grad_clip=2.0)
    agent.method.settings.lr = 0.0  # a zero step: every call alike
    dev = agent.device
    e = stream[0]
    x, y = e.x_train[:10].to(dev), e.y_train[:10].to(dev)
    u = agent._draw_uniforms(10)
    update = agent._update_batch(x, y, e.task_id, u, 0, agent.memory.group_sizes("class-balanced"))
    loss_of = agent.method.loss(update)
    rows = len(update.y) + len(update.y_mem)
    sizes = [(w.shape[1], w.shape[0]) for w in agent.model.parameters() if w.dim() == 2]
    forward = sum(i * o for i, o in sizes)  # multiply-adds a row: every layer's product
    backward = forward + sum(i * o for i, o in sizes[1:])  # weights' and inputs' gradients
    flop = 2 * rows * (forward + backward)
    a = torch.randn(1024, 1024, device=dev)
    us = best_us(
        {
            "update": lambda: agent.method._closed_form_step(loss_of, update),
            "sgemm": lambda: a @ a,
        },
        calls,
        dev,
    )
    return [
        {
            "mode": "default (5 x 42 rows)",
            "part": f"one update, closed form ({flop / 1e6:.1f} MFLOP)",
            "us_per_call": us["update"],
            "ratio": f"{flop / us['update'] / 1e3:.1f} GFLOP/s",
        },
        {
            "mode": "this core",
            "part": "1024 x 1024 x 1024 matrix product (torch, MKL)",
            "us_per_call": us["sgemm"],
            "ratio": f"{2 * 1024**3 / us['sgemm'] / 1e3:.1f} GFLOP/s",
        },
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--stream", default="split-mnist5k")
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(1)
    stream = streams.get_stream(args.stream, seed=0)
    rows = profile(stream, False, args.calls, args.device)
    rows += profile(stream, True, args.calls, args.device)
    rows = [{**r, "ratio": f"{r['ratio']:.2f}x" if "ratio" in r else None} for r in rows]
    rows += arithmetic(stream, max(args.calls // 10, 5), args.device)

    def cell(v) -> str:
        return "" if v is None else (f"{v:.1f}" if isinstance(v, float) else str(v))

    write_table("step", rows, ["mode", "part", "us_per_call", "ratio"], cell)


if __name__ == "__main__":
    main()
