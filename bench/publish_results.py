"""Copy a compare folder's results to docs/results (the README's tables point there).

    python bench/publish_results.py runs/results/split-mnist5k

writes docs/results/compare-STREAM.{json,md,png} and compute-STREAM.png.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "results"


def publish(folder: Path) -> None:
    stream = json.loads((folder / "results.json").read_text())["stream"]
    DOCS.mkdir(parents=True, exist_ok=True)
    shutil.copy(folder / "results.json", DOCS / f"compare-{stream}.json")
    shutil.copy(folder / "table.md", DOCS / f"compare-{stream}.md")
    shutil.copy(folder / "comparison.png", DOCS / f"compare-{stream}.png")
    shutil.copy(folder / "compute.png", DOCS / f"compute-{stream}.png")
    print(f"published {stream} to {DOCS}")


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        publish(Path(arg))
