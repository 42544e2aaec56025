"""The learner on a GPU, side by side in one run: ours-1x (one update a batch), the default
agent (five), Avalanche's Replay and DER++, and two bare loops that set the floor (autograd
and SGD launched op by op, and the same step captured once as a CUDA graph), on the reduced
ResNet-18 and the 784-100-100-10 MLP, at the online protocol's batch: 10 incoming examples,
10 replayed from a memory of 500, synthetic tensors (nothing to download).

    python bench/gpu_bench.py [--device cuda] [--nets rn18r,mlp] [--scale 1] [--out DIR]

Prints a table (examples/s; each method against Avalanche Replay and against the bare graph
loop) and writes gpu.json and gpu.md to ``--out`` (bench/results by default). Every figure
is training examples per second of steady training, timed between two synchronisations
after a warm-up (for ours: the memory full and the step captured; the warm-up's seconds,
capture included, are reported beside). On a machine whose Python lacks avalanche-lib or
faiss-cpu and has no network, carry their wheels (docs/benchmarks.md says which) and, if
wandb is missing too, put ``bench/gpu_stubs`` on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results_table import write_table  # noqa: E402
from lifelong.config import RunConfig  # noqa: E402
from lifelong.learner.agent import Agent, StreamSpec  # noqa: E402
from lifelong.learner.models import build_model  # noqa: E402

NETS = {  # name: (model kind, input shape, examples timed at scale 1)
    "rn18r": ("reduced-resnet18", (3, 32, 32), 6_000),
    "mlp": ("mlp", (1, 28, 28), 20_000),
}
BATCH, MEMORY, CLASSES = 10, 500, 10


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def data(shape, n: int, device: torch.device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g)
    y = torch.randint(0, CLASSES, (n,), generator=g)
    return x.to(device), y.to(device)


def _bare(kind, shape, n, device):
    """The bare loops' network, SGD, stream and memory (the memory full of random examples)."""
    torch.manual_seed(0)
    model = build_model(kind, shape, CLASSES, 100).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return (model, opt, *data(shape, n + 200 * BATCH, device), *data(shape, MEMORY, device, 1))


def bare_eager(kind, shape, n, device) -> dict:
    """Autograd + torch.optim.SGD, the replay batch gathered on the device: the plain loop."""
    model, opt, x, y, mx, my = _bare(kind, shape, n, device)

    def step(i: int) -> None:
        idx = torch.randint(0, MEMORY, (BATCH,), device=device)
        xb = torch.cat([x[i * BATCH : (i + 1) * BATCH], mx[idx]])
        yb = torch.cat([y[i * BATCH : (i + 1) * BATCH], my[idx]])
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(xb), yb).backward()
        opt.step()

    return _timed(step, n // BATCH, device)


def bare_graph(kind, shape, n, device) -> dict:
    """The same step captured once as a CUDA graph: gather outside, replay inside."""
    model, opt, x, y, mx, my = _bare(kind, shape, n, device)
    sx = torch.zeros(2 * BATCH, *shape, device=device)
    sy = torch.zeros(2 * BATCH, dtype=torch.int64, device=device)
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):
            opt.zero_grad(set_to_none=False)
            F.cross_entropy(model(sx), sy).backward()
            opt.step()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=False)
    with torch.cuda.graph(graph):
        F.cross_entropy(model(sx), sy).backward()
        opt.step()

    def step(i: int) -> None:
        idx = torch.randint(0, MEMORY, (BATCH,), device=device)
        sx[:BATCH].copy_(x[i * BATCH : (i + 1) * BATCH])
        torch.index_select(mx, 0, idx, out=sx[BATCH:])
        sy[:BATCH].copy_(y[i * BATCH : (i + 1) * BATCH])
        torch.index_select(my, 0, idx, out=sy[BATCH:])
        graph.replay()

    return _timed(step, n // BATCH, device)


def ours(kind, shape, n, device, **overrides) -> dict:
    """Our agent through ``observe`` (the runner's own loop adds a few microseconds a batch):
    warmed up until its memory is full and its step captured, then timed."""
    cfg = RunConfig(model=kind, memory=MEMORY, device=str(device), seed=0, **overrides).validate()
    spec = StreamSpec(shape, CLASSES, False, "class")
    agent = Agent(cfg, spec, Agent.memory_for(cfg, spec))
    warm = MEMORY // BATCH + 20
    x, y = data(shape, n + warm * BATCH, device)
    start = time.perf_counter()
    for i in range(warm):
        agent.observe(x[i * BATCH : (i + 1) * BATCH], y[i * BATCH : (i + 1) * BATCH], checked=True)
    synchronize(device)
    warmup_s = time.perf_counter() - start

    def step(i: int) -> None:
        i += warm
        agent.observe(x[i * BATCH : (i + 1) * BATCH], y[i * BATCH : (i + 1) * BATCH], checked=True)

    result = _timed(step, n // BATCH, device, warm=0)
    captured = any(s.step.captured for s in agent._steps.values())
    failed = [s.step.failed for s in agent._steps.values() if s.step.failed]
    return {**result, "warmup_s": warmup_s, "captured": captured, "error": failed or None}


def avalanche(name: str, kind, shape, n, device) -> dict:
    """Avalanche 0.6's strategy on the same network, with ``lifelong compare``'s protocol
    (SGD at lr 0.1, its settings), in its own loop; the second experience is timed."""
    from avalanche.benchmarks import dataset_benchmark
    from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset as tds

    from lifelong.compare.strategies import make_strategy

    torch.manual_seed(0)
    model = build_model(kind, shape, CLASSES, 100).to(device)
    x, y = data(shape, 2 * n, torch.device("cpu"))
    train = [tds(x[:n], y[:n]), tds(x[n:], y[n:])]
    test = [tds(x[:100], y[:100]), tds(x[n : n + 100], y[n : n + 100])]
    bench = dataset_benchmark(train, test)
    strategy = make_strategy(name, model, 2, MEMORY, BATCH, RunConfig(), {}, device)
    seconds = 0.0
    for i, exp in enumerate(bench.train_stream):
        synchronize(device)
        start = time.perf_counter()
        strategy.train(exp, num_workers=0)
        synchronize(device)
        if i == 1:  # the second experience: replay is on and everything is warm
            seconds = time.perf_counter() - start
    return {"examples_per_s": n / seconds, "seconds": seconds}


def _timed(step, steps: int, device, warm: int = 20) -> dict:
    for i in range(warm):
        step(i)
    synchronize(device)
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    synchronize(device)
    seconds = time.perf_counter() - start
    return {"examples_per_s": steps * BATCH / seconds, "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--nets", default="rn18r,mlp")
    ap.add_argument("--scale", type=float, default=1.0, help="examples timed, times the default")
    ap.add_argument("--out", type=Path, default=None, help="folder of gpu.json/.md")
    args = ap.parse_args()
    device = torch.device(args.device)
    warnings.filterwarnings("ignore")
    if device.type == "cuda":
        print(f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}", flush=True)
    ours_1x = dict(iters=1, replay_batch=10, lr=0.3, grad_clip=1.0)
    methods = {  # Avalanche's last: its loaders' threads are gone before ours is captured
        "bare eager": bare_eager,
        "bare CUDA graph": bare_graph,
        "ours-1x": lambda *a: ours(*a, **ours_1x),
        "ours-1x, no graph": lambda *a: ours(*a, **ours_1x, cuda_graph=False),
        "ours (default, 5 updates)": lambda *a: ours(*a),
        "avalanche replay": lambda *a: avalanche("replay", *a),
        "avalanche der++": lambda *a: avalanche("der++", *a),
    }
    if device.type != "cuda":
        methods.pop("bare CUDA graph")
        methods.pop("ours-1x, no graph")
    rows = []
    for net in args.nets.split(","):
        kind, shape, n = NETS[net]
        n = int(n * args.scale)
        found = {}
        for name, fn in methods.items():
            try:
                found[name] = fn(kind, shape, n, device)
            except Exception as exc:  # one method failing leaves the others' figures
                found[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            r = found[name]
            print(f"{net} {name}: {r.get('examples_per_s', r.get('error'))}", flush=True)
        replay = found["avalanche replay"].get("examples_per_s")
        graph = found.get("bare CUDA graph", {}).get("examples_per_s")
        for name, r in found.items():
            eps = r.get("examples_per_s")
            rows.append(
                {
                    "net": net,
                    "method": name,
                    "examples_per_s": eps,
                    "vs_avalanche_replay": eps / replay if eps and replay else None,
                    "bare_graph_over_it": graph / eps if eps and graph else None,
                    "warmup_s": r.get("warmup_s"),
                    "captured": r.get("captured"),
                    "error": str(r["error"]) if r.get("error") else None,
                }
            )

    def cell(v) -> str:
        if isinstance(v, float):
            return f"{v:,.0f}" if v > 100 else f"{v:.2f}"
        return "" if v is None else str(v)

    cols = ["net", "method", "examples_per_s", "vs_avalanche_replay", "bare_graph_over_it"]
    cols += ["warmup_s", "captured", "error"]
    write_table("gpu", rows, cols, cell, folder=args.out)


if __name__ == "__main__":
    main()
