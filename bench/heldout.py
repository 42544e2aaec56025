"""The goals of issue #18 where nothing was tuned: other seeds of the README's streams, and
shipped streams the README does not show (the digits as permuted, rotated, blurry and
task-incremental streams). Each check is one ``lifelong compare`` of ours, ours-1x,
Avalanche's strategies at one update a batch and Cumulative; the table is the README's
goals table for them, written to ``docs/results/heldout.{json,md}``.

    python bench/heldout.py             # run every check, then the table (make heldout)
    python bench/heldout.py --table     # the table from the folders already run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from results_readme import HEADER, goal_row, written_table

ROOT = Path(__file__).resolve().parents[1]
CHECKS = [  # (stream, seeds)
    ("split-mnist5k", "5-9"),
    ("rotated-mnist5k", "5-9"),
    ("permuted-digits", "0-4"),
    ("rotated-digits", "0-4"),
    ("blurry-digits", "0-4"),
    ("split-task-digits", "0-4"),
]
METHODS = "ours,ours-1x,replay,er-ace,der++,cumulative"


def folder(stream: str, seeds: str) -> Path:
    return ROOT / "runs" / "heldout" / f"{stream}-seeds-{seeds}"


def run_checks(jobs: int) -> None:
    for stream, seeds in CHECKS:
        cmd = [str(Path(sys.executable).parent / "lifelong"), "compare", "--stream", stream]
        cmd += ["--seeds", seeds, "--methods", METHODS, "--jobs", str(jobs)]
        cmd += ["--out", str(folder(stream, seeds)), "--no-progress"]
        subprocess.run(cmd, check=True)


def table() -> str:
    summaries = {}
    for stream, seeds in CHECKS:
        path = folder(stream, seeds) / "results.json"
        if not path.exists():
            sys.exit(f"heldout: no results at {path}; run `python bench/heldout.py` first")
        summaries[f"{stream}, seeds {seeds}"] = json.loads(path.read_text())["summary"]
    return written_table("heldout", HEADER, summaries, goal_row)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", action="store_true", help="only the table, from runs/heldout")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time")
    args = parser.parse_args()
    if not args.table:
        run_checks(args.jobs)
    print(table())
