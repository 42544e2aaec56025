"""How long a command takes to start: `lifelong --help`, `streams list`, `memory stats`.

Each command runs as a new process 7 times; the table gives the median and fastest wall
time beside importing torch alone (what every command paid before heavy imports moved to
first use). Copy the printed table into docs/benchmarks.md.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_table import write_table  # noqa: E402

REPEATS = 7


def timed(argv: list[str]) -> list[float]:
    times = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        setup = (
            "import numpy as np, sys\nfrom stores import EpisodicStore\n"
            "st = EpisodicStore.create(sys.argv[1], dim=100, value_shape=(784,))\n"
            "st.write(np.random.rand(500, 100).astype('f4'), np.random.rand(500, 784)"
            ".astype('f4'), np.arange(500) % 10)\nst.close()\n"
        )
        store = str(Path(tmp) / "mem")
        subprocess.run([sys.executable, "-c", setup, store], check=True)
        lifelong = [sys.executable, "-m", "lifelong.cli"]
        cases = {
            "python -c 'import torch' (the old floor)": [sys.executable, "-c", "import torch"],
            "lifelong --help": [*lifelong, "--help"],
            "lifelong streams list": [*lifelong, "streams", "list"],
            "lifelong memory stats (500 memories)": [*lifelong, "memory", "stats", store],
        }
        rows = []
        for name, argv in cases.items():
            t = timed(argv)
            rows.append({"command": name, "median s": statistics.median(t), "fastest s": min(t)})
    write_table("startup", rows, ["command", "median s", "fastest s"])


if __name__ == "__main__":
    main()
