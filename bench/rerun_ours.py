"""Rerun our rows of a published table after a change to our agent, keeping every Avalanche
strategy's rows as they are: each of our methods in the published file, on its seeds, under
the file's protocol alone (a real-time row needs no waiting run first: only an Avalanche
strategy's schedule is made from one), then the table, CSV and plot written as ``compare``
writes them, into the run folder and ``docs/results``.

    python bench/rerun_ours.py real-time split-mnist5k --jobs 2
    python bench/rerun_ours.py label-delay-10 split-mnist5k --jobs 2
    python bench/rerun_ours.py online split-mnist5k --methods ours,ours-1x
    python bench/rerun_ours.py eval-every-10-real-time split-mnist5k  # evaluated every 10

(``online``: the waiting stream's answers tables' file, ``online-STREAM.json``; a real-time
rerun rewrites ``online-real-time-STREAM.json`` too, a copy of the real-time file.)

Where our change cannot move an Avalanche row (ours alone is run), this is ``lifelong compare``
of every method again, at a fraction of the time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path

from lifelong.compare import is_ours, rerun_ours
from lifelong.compare.outputs import write_outputs
from lifelong.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "results"


def rerun(protocol: str, stream: str, jobs: int, methods: list[str] | None = None) -> Path:
    """Our rows of ``docs/results/PROTOCOL-STREAM.json`` (``methods`` of them, or all) run
    again and published."""
    published = DOCS / f"{protocol}-{stream}.json"
    if not published.is_file():
        raise SystemExit(f"no {published}: rerun_ours reruns a published table's rows")
    record = json.loads(published.read_text())
    delay, memory = record.get("label_delay", 0), record["memory"]
    every = record.get("eval_every") or 0
    timed = protocol.endswith("real-time")
    known = ["real-time", "online", f"label-delay-{delay}"]
    known += [f"eval-every-{every}", f"eval-every-{every}-real-time"] if every else []
    if protocol not in known:
        raise SystemExit(f"{protocol}: one of {known} for {published.name}")
    cfg = dataclasses.replace(
        RunConfig(), progress=False, real_time=timed, label_delay=delay, eval_every=every
    )
    out = ROOT / "runs" / "rerun-ours" / f"{protocol}-{stream}"
    out.mkdir(parents=True, exist_ok=True)
    mine = (lambda m: m in methods) if methods else is_ours
    ours = sorted({(r["method"], r["seed"]) for r in record["runs"] if mine(r["method"])})
    if not ours:
        raise SystemExit(f"{published.name} holds no rows of {methods or 'ours'}")
    results = rerun_ours(ours, stream, memory, cfg, out, jobs, earlier=record["runs"])
    write_outputs(results, stream, memory, out, delay, every)
    other_sitting(out / "results.json", out / "table.md")
    for part, ext in (("results", "json"), ("table", "md"), ("comparison", "png")):
        target = DOCS / f"{protocol}-{stream}.{ext}"
        if ext == "json" or target.exists():  # the answers files are JSON alone
            shutil.copy(out / f"{part}.{ext}", target)
    if protocol == "real-time" and (DOCS / f"online-real-time-{stream}.json").exists():
        shutil.copy(out / "results.json", DOCS / f"online-real-time-{stream}.json")
    print(f"{len(ours)} runs of ours redone; published {protocol}-{stream} to {DOCS}")
    return out


def other_sitting(results: Path, table: Path | None = None) -> None:
    """Say that our rows were timed in another sitting than Avalanche's: their speed columns
    compare with nothing else in the file (a machine's speed varies from day to day; here up to
    5x), so no speed ratio is kept."""
    record = json.loads(results.read_text())
    record["speed_ratios"] = []
    record["timing"] = TIMING
    results.write_text(json.dumps(record, indent=2) + "\n")
    if table is not None and TIMING not in table.read_text():
        table.write_text(table.read_text().rstrip("\n") + f"\n\n{TIMING}\n")


TIMING = (
    "Our rows were rerun (bench/rerun_ours.py) in another sitting than the other methods': "
    "their train s and samples/s compare with nothing else here."
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "protocol",
        help="the published file's prefix: real-time, online, label-delay-D, eval-every-N"
        " or eval-every-N-real-time",
    )
    p.add_argument("streams", nargs="+")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--methods", help="which of our methods (comma-separated; default: all)")
    args = p.parse_args()
    for stream in args.streams:
        rerun(args.protocol, stream, args.jobs, args.methods.split(",") if args.methods else None)


if __name__ == "__main__":
    main()
