"""What each ingredient of the default agent adds: every piece turned off in turn.

Runs the default agent and one variant per ingredient over the README's streams and seeds
(the same run as ``lifelong run``, in temporary folders), and, at Avalanche's compute
(``ours-1x``), the pieces that one adds. Prints a table of average accuracy (mean ± std over
seeds) with each variant's change against its reference, and writes
``docs/results/ablation.{json,md}``.

    python bench/ablation.py                 # 5 streams x seeds 0-4, two at a time
    python bench/ablation.py --seeds 0-1 --streams split-digits
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lifelong.compare import OURS, parse_seeds
from lifelong.config import RunConfig
from lifelong.runner import run

STREAMS = ["split-mnist5k", "permuted-mnist5k", "rotated-mnist5k", "blurry-mnist5k", "split-digits"]
ONE_X = OURS["ours-1x"]
# (name, reference, RunConfig keys): each variant is its reference with one piece changed
VARIANTS = [
    ("default", None, {}),
    ("no controller (head alone)", "default", {"gate": False}),
    ("no weight average", "default", {"average_weights": 0.0}),
    ("no logit replay (DER++ -> ER)", "default", {"distill": 0.0}),
    ("no logit refresh at experience ends", "default", {"refresh_logits": False}),
    ("uniform replay (not class-balanced)", "default", {"replay_policy": "uniform"}),
    ("no gradient clipping", "default", {"grad_clip": 0.0}),
    ("ours-1x", None, ONE_X),
    ("ours-1x, no controller", "ours-1x", {**ONE_X, "gate": False}),
    ("ours-1x, no weight average", "ours-1x", {**ONE_X, "average_weights": 0.0}),
    (
        "ours-1x, the default's step (lr 0.1, clip 2)",
        "ours-1x",
        {**ONE_X, "lr": 0.1, "grad_clip": 2.0},
    ),
]
OUT = Path(__file__).resolve().parents[1] / "docs" / "results"


def one(job: tuple) -> tuple:
    name, stream, seed = job
    torch.set_num_threads(1)
    keys = dict(next(v[2] for v in VARIANTS if v[0] == name))
    cfg = replace(RunConfig(), stream=stream, seed=seed, progress=False, tensorboard=False, **keys)
    with tempfile.TemporaryDirectory() as folder:
        s = run(cfg, Path(folder) / "run", echo=lambda m: None).summary
    return name, stream, seed, s["average_accuracy"], s["forgetting_chaudhry2018"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0-4")
    p.add_argument("--streams", default=",".join(STREAMS))
    p.add_argument("--jobs", type=int, default=2)
    args = p.parse_args()
    seeds, streams_ = parse_seeds(args.seeds), args.streams.split(",")
    jobs = [(v[0], s, seed) for v in VARIANTS for s in streams_ for seed in seeds]
    acc: dict = {}
    with Pool(args.jobs) as pool:
        for name, stream, seed, a, _ in tqdm(pool.imap_unordered(one, jobs), total=len(jobs)):
            acc.setdefault((name, stream), {})[seed] = a
    rows = []
    for name, ref, keys in VARIANTS:
        row = {"variant": name, "reference": ref, "keys": keys}
        for s in streams_:
            v = np.array([acc[name, s][k] for k in seeds])
            row[s] = {"mean": float(v.mean()), "std": float(v.std())}
            if ref is not None:  # per seed, then averaged: the change the piece makes
                d = v - np.array([acc[ref, s][k] for k in seeds])
                row[s]["change"] = float(d.mean())
        rows.append(row)
    head = "| variant | " + " | ".join(streams_) + " |"
    lines = [head, "|---|" + "---|" * len(streams_)]
    for r in rows:
        cells = []
        for s in streams_:
            c = f"{r[s]['mean']:.3f} ± {r[s]['std']:.3f}"
            if "change" in r[s]:
                c += f" ({r[s]['change']:+.3f})"
            cells.append(c)
        lines.append(f"| {r['variant']} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    OUT.mkdir(parents=True, exist_ok=True)
    record = {"seeds": seeds, "streams": streams_, "rows": rows}
    (OUT / "ablation.json").write_text(json.dumps(record, indent=2))
    (OUT / "ablation.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
