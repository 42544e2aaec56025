"""Shared pieces of the serve tests: two small tasks of real digits, a served process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# the learner of every serve test: small, so a whole served run takes seconds
FLAGS = [
    "--n-classes", "10", "--memory", "50", "--iters", "2", "--hidden", "32",
    "--checkpoint-every", "5", "--checkpoint-seconds", "0", "--no-tensorboard", "--seed", "0",
]  # fmt: skip


# the same learner as a RunConfig's keys (in-process services and reference runs)
SMALL = dict(
    n_classes=10,
    memory=50,
    iters=2,
    hidden=32,
    checkpoint_every=5,
    checkpoint_seconds=0.0,
    progress=False,
    tensorboard=False,
    seed=0,
)


def digit_tasks(n_train: int = 200, n_test: int = 60) -> list[dict]:
    """Two class-incremental tasks of scikit-learn's 8x8 digits: (0, 1) then (2, 3)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = (d.data / 16).astype(np.float32), d.target.astype(np.int64)
    tasks = []
    for classes in ((0, 1), (2, 3)):
        m = np.flatnonzero(np.isin(y, classes))
        tasks.append(
            {
                "x": x[m[:n_train]],
                "y": y[m[:n_train]],
                "x_test": x[m[n_train : n_train + n_test]],
                "y_test": y[m[n_train : n_train + n_test]],
            }
        )
    return tasks


def batches(task: dict, size: int = 10):
    for k in range(0, len(task["y"]), size):
        yield k // size, task["x"][k : k + size], task["y"][k : k + size]


def wait_until(check, timeout: float = 300.0, what: str = "condition"):
    """Poll ``check()`` until it returns something truthy (a generous ceiling, never a
    measured duration: the test does not depend on the machine's speed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Served:
    """``lifelong serve`` in a child process on a free port."""

    started: list[Served] = []

    def __init__(
        self, out: Path, *extra: str, env: dict | None = None, log_dir: Path | None = None
    ) -> None:
        log_dir = log_dir or out.parent
        n = len(list(log_dir.glob(f"{out.name}-serve-*.log")))
        self.log_path = log_dir / f"{out.name}-serve-{n}.log"  # one per process
        self.log = open(self.log_path, "wb")  # noqa: SIM115 (open while the child runs)
        cmd = [sys.executable, "-m", "lifelong.cli", "serve", "--out", str(out), "--port", "0"]
        self.proc = subprocess.Popen(
            cmd + FLAGS + list(extra),
            stdout=self.log,
            stderr=self.log,
            env={**os.environ, **(env or {})},
        )
        Served.started.append(self)
        self.url = wait_until(self._address, what=f"the server to listen ({self.log_path})")

    def _address(self) -> str | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"serve exited: {self.log_path.read_text()}")
        found = re.search(r"on (http://[\d.]+:\d+)/", self.log_path.read_text())
        return found.group(1) if found else None

    @classmethod
    def kill_leftovers(cls) -> None:
        """Kill every server a test left running (one that failed half way)."""
        for server in cls.started:
            if server.proc.poll() is None:
                server.kill()
        cls.started.clear()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=120)
        self.log.close()
        return code
