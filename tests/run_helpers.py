"""Helpers shared by the run and fault tests: a small run, its reference, a paused run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lifelong.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
LIFELONG = [sys.executable, "-m", "lifelong.cli"]
SMALL = [
    "--stream",
    "split-digits",
    "--experiences",
    "3",
    "--seed",
    "1",
    "--memory",
    "100",
    "--checkpoint-every",
    "7",
    "--learned-rates",  # the slower agent: a kill lands mid-run, and its state resumes too
    "--no-progress",
]


def quiet(msg):
    pass


def small_cfg(**kw) -> RunConfig:
    base = dict(
        stream="split-digits",
        experiences=3,
        seed=1,
        memory=100,
        checkpoint_every=7,
        learned_rates=True,
        progress=False,
    )
    return RunConfig(**{**base, **kw}).validate()


def matrix(run_dir: Path) -> np.ndarray:
    rows = json.loads((run_dir / "summary.json").read_text())["matrix"]
    return np.array([[np.nan if v is None else v for v in r] for r in rows], float)


def events_without_timing(run_dir: Path) -> list[dict]:
    """metrics.jsonl's events, every line whole and valid JSON, less their timings."""
    lines = (run_dir / "metrics.jsonl").read_text().split("\n")
    assert lines[-1] == ""
    return [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in lines[:-1]]


def reference_run(tmp_path_factory) -> Path:
    """The uninterrupted run of SMALL that killed and resumed runs must equal."""
    out = tmp_path_factory.mktemp("ref") / "run"
    subprocess.run(
        [*LIFELONG, "run", *SMALL, "--out", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return out


def start_paused(out: Path, step: int, tmp_path: Path, *extra: str) -> subprocess.Popen:
    """``lifelong run`` that stops and waits after step ``step`` (the test-only pause hook),
    returned once it is there: the test then kills it at a point it chose, however fast or
    slow the machine is."""
    flag = tmp_path / f"paused-{step}"
    proc = subprocess.Popen(
        [*LIFELONG, "run", *SMALL, *extra, "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LIFELONG_TEST_PAUSE": f"{step}:{flag}"},
    )
    deadline = time.time() + 300
    while not flag.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.time() < deadline, "the run never reached its pause"
        time.sleep(0.02)
    return proc


@contextlib.contextmanager
def stop_at(monkeypatch, tmp_path: Path, step: int) -> Iterator[None]:
    """Within the block, the next in-process ``run`` stops after step ``step`` as Ctrl-C
    would: the pause hook holds it there and a watcher thread sends this process SIGINT.
    Leaving the block ends the watcher, whether or not the run got there."""
    flag = tmp_path / f"inproc-paused-{step}"
    flag.unlink(missing_ok=True)
    done = threading.Event()
    monkeypatch.setenv("LIFELONG_TEST_PAUSE", f"{step}:{flag}")

    def watch() -> None:
        while not done.is_set():
            if flag.exists():
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
        monkeypatch.delenv("LIFELONG_TEST_PAUSE")
