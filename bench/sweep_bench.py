"""A sweep of 20 short trials on this machine: Ray against today's ``--jobs 2`` process pool
and against the ideal (the trials' own times, run one by one, divided by the cores).

    python bench/sweep_bench.py

Trials: our agent on permuted-mnist5k (5 experiences), iters 1-5 x seeds 0-3. Prints a table
and writes bench/results/sweep.json.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SWEEP = """
[sweep]
streams = ["permuted-mnist5k"]
seeds = "0-3"
memory = 200

[methods.ours]
fixed = { experiences = 5 }
grid = { iters = [1, 2, 3, 4, 5] }
"""
JOBS = 2


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from lifelong.sweep import driver, spec
    from lifelong.sweep.trial import run_trial

    plan = spec.parse(spec.tomllib.loads(SWEEP), "bench")
    work = Path(tempfile.mkdtemp(prefix="sweep-bench-"))
    quiet = dict(progress=False, echo=lambda m: None)

    t = time.perf_counter()
    alone, _ = driver.sweep(plan, work / "one-by-one", jobs=1, **quiet)
    sequential = time.perf_counter() - t
    ideal = sum(r["wall_seconds"] for r in alone) / JOBS

    t = time.perf_counter()
    with ProcessPoolExecutor(JOBS, mp_context=mp.get_context("spawn")) as pool:
        list(pool.map(run_trial, [x.to_dict() for x in plan.trials], [str(work / "pool")] * 20))
    processes = time.perf_counter() - t

    startup: list[float] = []

    def hear(message: str) -> None:
        if message.startswith("Ray ready in"):
            startup.append(float(message.split()[3]))

    t = time.perf_counter()
    on_ray, _ = driver.sweep(plan, work / "ray", jobs=JOBS, progress=False, echo=hear)
    ray = time.perf_counter() - t

    same = all(
        a["matrix"] == b["matrix"]
        for a, b in zip(
            sorted(alone, key=lambda r: r["trial"]), sorted(on_ray, key=lambda r: r["trial"])
        )
    )
    # the trials' own times as they ran side by side on Ray (two at a time on two cores,
    # each a little slower than alone): what a perfect scheduler could not beat either
    ideal_ran = sum(r["wall_seconds"] for r in on_ray) / JOBS
    start = startup[0] if startup else 0.0
    figures = {
        "trials": len(plan.trials),
        "jobs": JOBS,
        "cores": os.cpu_count(),
        "sequential_s": sequential,
        "ideal_alone_s": ideal,
        "ideal_as_ran_s": ideal_ran,
        "process_pool_s": processes,
        "ray_s": ray,
        "ray_startup_s": start,
        "same_results": same,
    }
    out = ROOT / "bench" / "results" / "sweep.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))
    rows = [
        ("one by one, in this process", sequential),
        (f"`--jobs {JOBS}` process pool (how compare ran before)", processes),
        (f"`lifelong sweep`, Ray local cluster ({JOBS} workers), all in", ray),
        ("  the same without Ray's start-up", ray - start),
    ]
    print("| way | wall s | / ideal (trials alone) | / ideal (trials as they ran) |")
    print("|---|---|---|---|")
    print(f"| ideal: trials' times one by one / {JOBS} | {ideal:.1f} | 1.00 | |")
    print(f"| ideal: trials' times as they ran on Ray / {JOBS} | {ideal_ran:.1f} | | 1.00 |")
    for name, wall in rows:
        print(f"| {name} | {wall:.1f} | {wall / ideal:.2f} | {wall / ideal_ran:.2f} |")
    print(f"| Ray start-up | {start:.1f} | | |")
    print(
        f"(results on Ray equal the one-by-one run's: {same}; {len(plan.trials)} trials; "
        f"machine: {os.cpu_count()} cores; figures in {out.relative_to(ROOT)})"
    )


if __name__ == "__main__":
    main()
