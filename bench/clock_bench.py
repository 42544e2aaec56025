"""What the stream clock costs when it is off: ``lifelong run`` (the default agent, clock
off) from this tree and from a tree without the clock, side by side, alternating runs so
the machine's drift hits both alike. Compares the training seconds the runs report (the
loop, evaluation excluded), as a ratio per round; the median is the figure. Beside it, each
run's whole wall time (start-up, evaluation and the measures kept outside the training
time, such as the near-future answer, included).

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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_run(tree: Path, stream: str, out: Path) -> tuple[float, float]:
    """One run from ``tree``'s code, with this environment's packages: its training seconds
    and the whole process's wall seconds."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "lifelong.cli", "run", "--stream", stream, "--out", str(out)]
        + ["--no-progress", "--no-tensorboard", "--checkpoint-seconds", "0"],
        cwd=tree,
        check=True,
        capture_output=True,
        env={"PYTHONPATH": str(tree), "PATH": str(Path(sys.executable).parent)},
    )
    wall = time.perf_counter() - started
    return json.loads((out / "summary.json").read_text())["summary"]["train_seconds"], wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True, help="a checkout without the clock")
    ap.add_argument("--stream", default="split-mnist5k")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    rows, walls = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            now, now_wall = timed_run(ROOT, args.stream, Path(tmp) / f"now-{i}")
            before, before_wall = timed_run(
                Path(args.before), args.stream, Path(tmp) / f"before-{i}"
            )
            rows.append((now, before))
            walls.append((now_wall, before_wall))
            print(
                f"round {i}: clock off {now:.2f} s, without the clock {before:.2f} s, "
                f"ratio {now / before:.3f}; whole run {now_wall:.2f} s against "
                f"{before_wall:.2f} s",
                flush=True,
            )
    ratios = [a / b for a, b in rows]
    wall_ratios = [a / b for a, b in walls]
    before_commit = subprocess.run(
        ["git", "-C", args.before, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    record = {
        "stream": args.stream,
        "before": before_commit or args.before,  # the tree each round is measured against
        "rounds": [
            {"clock_off_s": a, "no_clock_s": b, "ratio": a / b, "wall_s": w, "no_clock_wall_s": v}
            for (a, b), (w, v) in zip(rows, walls)
        ],
        "median_ratio": statistics.median(ratios),
        "median_wall_ratio": statistics.median(wall_ratios),
    }
    out = ROOT / "bench" / "results" / "clock_bench.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    print(
        "\n| stream | rounds | train s, clock off (median) | train s, no clock (median) "
        "| ratio (median of rounds) | whole run, wall: ratio (median) |"
    )
    print("|---|---|---|---|---|---|")
    print(
        f"| {args.stream} | {args.rounds} | {statistics.median(a for a, _ in rows):.2f} "
        f"| {statistics.median(b for _, b in rows):.2f} | {statistics.median(ratios):.3f} "
        f"| {statistics.median(wall_ratios):.3f} |"
    )


if __name__ == "__main__":
    main()
