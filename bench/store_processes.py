"""The store bench's process side: memory the process holds, and the store opened in a new
process, after a clean close or after a writer killed with SIGKILL among its writes (what a
restarted program pays)."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def resident_gb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def give_back_freed_memory() -> None:
    """Return the writer's freed heap to the system before a second process opens the store
    (glibc keeps freed IVF lists in its arenas: at 10M, gigabytes the opener then lacks)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


KILL_WRITER = """
import sys, numpy as np
sys.path.insert(0, sys.argv[2])
from stores import EpisodicStore
st = EpisodicStore.open(sys.argv[1])
st.settle()  # writes wait for a mapped index's copy: the kill is to land among writes
rng = np.random.default_rng(5)
print("ready", flush=True)
while True:
    st.write(rng.standard_normal((500, 128)).astype(np.float32),
             rng.integers(0, 256, (500, 784), dtype=np.uint8), rng.integers(0, 10, 500))
"""


OPENER = """
import sys, time
sys.path.insert(0, sys.argv[2])
from stores import EpisodicStore
t = time.perf_counter()
st = EpisodicStore.open(sys.argv[1])
took = time.perf_counter() - t
st.settle()  # a mapped index file: its owned copy loaded and checked on a thread
settled = time.perf_counter() - t
assert st.verify(sample=100)["ok"]
st.close()
print(took, settled)
"""


def timed_open(folder: Path) -> tuple[float, float]:
    """Seconds to open the store in a new process (what a restarted program pays, not a
    process that already holds the bench's indexes: at 10M they squeeze the page cache),
    and until its index is loaded and checked (a large IVF file opens mapped and loads its
    copy on a thread; the first change of the index waits for that)."""
    out = subprocess.run(
        [sys.executable, "-c", OPENER, str(folder), str(ROOT)],
        capture_output=True,
        text=True,
        check=True,
    )
    if out.stderr.strip():  # a warning (an index file rebuilt) is part of the result
        print(out.stderr.strip(), flush=True)
    took, settled = out.stdout.split()[-2:]
    return float(took), float(settled)


def open_after_kill(folder: Path, seconds: float = 3.0) -> float:
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_WRITER, str(folder), str(ROOT)],
        stdout=subprocess.PIPE,
        text=True,
    )
    proc.stdout.readline()
    time.sleep(seconds)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return timed_open(folder)[0]
