"""What the stream clock costs when it is off: ``lifelong run`` (the default agent, clock
off) from this tree and from a tree without the clock, side by side, alternating runs so
the machine's drift hits both alike. Compares the training seconds the runs report (the
loop, evaluation excluded), as a ratio per round; the median is the figure.

    git worktree add /tmp/before-clock f59454c      # the commit before the clock
    python bench/clock_bench.py --before /tmp/before-clock [--stream split-mnist5k] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def train_seconds(tree: Path, stream: str, out: Path) -> float:
    """One run from ``tree``'s code, with this environment's packages."""
    subprocess.run(
        [sys.executable, "-m", "lifelong.cli", "run", "--stream", stream, "--out", str(out)]
        + ["--no-progress", "--no-tensorboard", "--checkpoint-seconds", "0"],
        cwd=tree,
        check=True,
        capture_output=True,
        env={"PYTHONPATH": str(tree), "PATH": str(Path(sys.executable).parent)},
    )
    return json.loads((out / "summary.json").read_text())["summary"]["train_seconds"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True, help="a checkout without the clock")
    ap.add_argument("--stream", default="split-mnist5k")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            now = train_seconds(ROOT, args.stream, Path(tmp) / f"now-{i}")
            before = train_seconds(Path(args.before), args.stream, Path(tmp) / f"before-{i}")
            rows.append((now, before))
            print(
                f"round {i}: clock off {now:.2f} s, without the clock {before:.2f} s, "
                f"ratio {now / before:.3f}",
                flush=True,
            )
    ratios = [a / b for a, b in rows]
    record = {
        "stream": args.stream,
        "rounds": [{"clock_off_s": a, "no_clock_s": b, "ratio": a / b} for a, b in rows],
        "median_ratio": statistics.median(ratios),
    }
    out = ROOT / "bench" / "results" / "clock_bench.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    print(
        "\n| stream | rounds | train s, clock off (median) | train s, no clock (median) "
        "| ratio (median of rounds) |"
    )
    print("|---|---|---|---|---|")
    print(
        f"| {args.stream} | {args.rounds} | {statistics.median(a for a, _ in rows):.2f} "
        f"| {statistics.median(b for _, b in rows):.2f} | {statistics.median(ratios):.3f} |"
    )


if __name__ == "__main__":
    main()
