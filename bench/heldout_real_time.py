"""Issue #27's real-time goals where nothing was tuned: the held-out checks of
``bench/heldout.py`` (other seeds of a README stream, and shipped streams the README does
not show) on a stream that does not wait, at the default rate. Each check is one
``lifelong compare --real-time`` of every method, ours at fixed budgets too; the table is
the README's real-time table for them, written to ``docs/results/heldout-real-time.{json,md}``.

    python bench/heldout_real_time.py            # run every check, then the table
    python bench/heldout_real_time.py --table    # the table from the folders already run

rotated-mnist5k's seeds 5-9 (40,000 examples, every method twice) run only with
``--with-rotated``: 36 minutes on two cores (2026-12-07). The table shows them once run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import heldout
from results_readme import REAL_TIME_HEADER as HEADER
from results_readme import real_time_row, written_table

ROOT = Path(__file__).resolve().parents[1]
LONG = [("rotated-mnist5k", "5-9")]
CHECKS = [check for check in heldout.CHECKS if check not in LONG]  # (stream, seeds)


def folder(stream: str, seeds: str) -> Path:
    return ROOT / "runs" / "heldout-real-time" / f"{stream}-seeds-{seeds}"


def compare_each(checks: list[tuple[str, str]], jobs: int, out_of, *protocol: str) -> None:
    """One ``lifelong compare`` a check, at memory 500, with ``protocol``'s arguments, into
    ``out_of(stream, seeds)``."""
    for stream, seeds in checks:
        cmd = [str(Path(sys.executable).parent / "lifelong"), "compare", "--stream", stream]
        cmd += ["--seeds", seeds, *protocol, "--memory", "500", "--jobs", str(jobs)]
        subprocess.run([*cmd, "--no-progress", "--out", str(out_of(stream, seeds))], check=True)


def run_checks(checks: list[tuple[str, str]], jobs: int) -> None:
    compare_each(checks, jobs, folder, "--methods", "all", "--compute", "0.1,0.2", "--real-time")


def checks_table(prog: str, header: str, row, results_of, checks: list[tuple[str, str]]) -> str:
    """The table of every check run so far (``results_of(stream, seeds)``: its results.json),
    a ``row`` a check, written to docs/results/ under ``prog``'s name."""
    summaries = {}
    for stream, seeds in checks:
        path = results_of(stream, seeds)
        if path.exists():
            summaries[f"{stream}, seeds {seeds}"] = json.loads(path.read_text())["summary"]
    if not summaries:
        sys.exit(f"{prog}: no results yet; run `python bench/{prog}.py`")
    return written_table(prog.replace("_", "-"), header, summaries, row)


def main(doc: str, run, table) -> None:
    """Run the checks (``run(checks, jobs)``; rotated-mnist5k only when asked), then print
    ``table(checks)`` of every check run so far; ``--table``: the table alone."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--table", action="store_true", help="only the table, from the runs")
    parser.add_argument("--with-rotated", action="store_true", help="rotated-mnist5k too")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time")
    args = parser.parse_args()
    if not args.table:
        run(CHECKS + (LONG if args.with_rotated else []), args.jobs)
    print(table(CHECKS + LONG))  # every check run so far, rotated-mnist5k's where it was


def table(checks: list[tuple[str, str]]) -> str:
    return checks_table(
        "heldout_real_time",
        HEADER,
        real_time_row,
        lambda stream, seeds: folder(stream, seeds) / "real-time" / "results.json",
        checks,
    )


if __name__ == "__main__":
    main(__doc__, run_checks, table)
