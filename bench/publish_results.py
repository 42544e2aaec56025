"""Copy a compare folder's results to docs/results (the README's tables point there).

    python bench/publish_results.py runs/results/split-mnist5k
    python bench/publish_results.py --real-time-only runs/results-rt/split-mnist5k
    python bench/publish_results.py runs/results-ld/split-mnist5k
    python bench/publish_results.py runs/results-ce/split-mnist5k

writes docs/results/compare-STREAM.{json,md,png} and compute-STREAM.png, and from a
``compare --real-time`` folder real-time-STREAM.{json,md,png} (its ``real-time/`` rows);
``--real-time-only`` leaves the waiting protocol's files as they are. A ``compare
--label-delay D`` folder is published as label-delay-D-STREAM.{json,md,png} alone, a
``compare --eval-every N`` one as eval-every-N-STREAM.* (and eval-every-N-real-time-STREAM.*
from its ``real-time/`` rows): their min-ACC is another measure than the tables' own.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "results"


def publish(folder: Path, waiting: bool = True) -> None:
    record = json.loads((folder / "results.json").read_text())
    stream, delay = record["stream"], record.get("label_delay", 0)
    DOCS.mkdir(parents=True, exist_ok=True)
    if delay:  # another protocol: its own files, the waiting ones left as they are
        for part, ext in (("results", "json"), ("table", "md"), ("comparison", "png")):
            shutil.copy(folder / f"{part}.{ext}", DOCS / f"label-delay-{delay}-{stream}.{ext}")
        print(f"published {stream}'s rows at label delay {delay} to {DOCS}")
        return
    every = record.get("eval_every", 0)
    if every:  # min-ACC from evaluations every N updates: files of its own
        for sub, name in (
            ("", f"eval-every-{every}"),
            ("real-time", f"eval-every-{every}-real-time"),
        ):
            if (folder / sub / "results.json").exists():
                for part, ext in (("results", "json"), ("table", "md"), ("comparison", "png")):
                    shutil.copy(folder / sub / f"{part}.{ext}", DOCS / f"{name}-{stream}.{ext}")
        print(f"published {stream}'s rows evaluated every {every} updates to {DOCS}")
        return
    timed = folder / "real-time"
    if timed.is_dir():
        shutil.copy(timed / "results.json", DOCS / f"real-time-{stream}.json")
        shutil.copy(timed / "table.md", DOCS / f"real-time-{stream}.md")
        shutil.copy(timed / "comparison.png", DOCS / f"real-time-{stream}.png")
        print(f"published {stream}'s real-time rows to {DOCS}")
    if not waiting:
        return
    shutil.copy(folder / "results.json", DOCS / f"compare-{stream}.json")
    shutil.copy(folder / "table.md", DOCS / f"compare-{stream}.md")
    shutil.copy(folder / "comparison.png", DOCS / f"compare-{stream}.png")
    shutil.copy(folder / "compute.png", DOCS / f"compute-{stream}.png")
    print(f"published {stream} to {DOCS}")


if __name__ == "__main__":
    args = sys.argv[1:]
    only = "--real-time-only" in args
    for arg in [a for a in args if a != "--real-time-only"]:
        publish(Path(arg), waiting=not only)
