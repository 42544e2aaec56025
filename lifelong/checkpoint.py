"""Atomic checkpoints: agent state, progress and a snapshot of the memory store, together.

Everything is written into ``checkpoint.tmp/`` and then swapped in by renames, so a kill at
any moment leaves either the old checkpoint or the new one. Weights are plain tensors and
everything else is JSON text, so loading uses ``torch.load(weights_only=True)``: no pickles.

``Writer`` writes them on a background thread: what a checkpoint holds is copied first (the
state's tensors, the store's database into RAM: a few milliseconds), and the files, fsyncs
and renames (ten more) overlap with training.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import torch

from stores import EpisodicStore
from stores.store import write_snapshot

NAME, TMP, OLD = "checkpoint", "checkpoint.tmp", "checkpoint.old"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copied(value):
    """A copy that later training cannot change (state dicts hold the live weights)."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return type(value)((k, _copied(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_copied(v) for v in value)
    return value


def capture(agent_state: dict, progress: dict, store: EpisodicStore) -> tuple:
    """Everything one checkpoint holds, copied: (state with progress, database in RAM)."""
    state = {**_copied(agent_state), "progress": json.dumps(progress)}
    return state, store.snapshot()


def write(run_dir: Path, state: dict, database) -> None:
    """Write a captured checkpoint and swap it in."""
    tmp, final, old = run_dir / TMP, run_dir / NAME, run_dir / OLD
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    with open(tmp / "state.pt", "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    try:
        write_snapshot(database, tmp / "memory.sqlite")
    finally:
        database.close()
    _fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
    os.rename(tmp, final)
    _fsync_dir(run_dir)
    shutil.rmtree(old, ignore_errors=True)


def save(run_dir: Path, agent_state: dict, progress: dict, store: EpisodicStore) -> None:
    """Write a checkpoint now, in this thread."""
    write(run_dir, *capture(agent_state, progress, store))


class Writer:
    """Checkpoints written on a background thread, one at a time. ``save`` returns once the
    checkpoint is captured; ``wait`` returns once it is on disk, and raises what writing it
    raised."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def save(self, agent_state: dict, progress: dict, store: EpisodicStore) -> None:
        self.wait()
        captured = capture(agent_state, progress, store)
        self._thread = threading.Thread(target=self._write, args=captured, name="checkpoint-writer")
        self._thread.start()

    def _write(self, state: dict, database) -> None:
        try:
            write(self.run_dir, state, database)
        except BaseException as exc:  # handed to the training thread at the next wait()
            self._error = exc

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def load(run_dir: Path) -> tuple[dict, dict, Path] | None:
    """(agent state, progress, store snapshot file) of the newest complete checkpoint."""
    for name in (NAME, OLD):  # OLD survives only a kill between the two renames
        folder = run_dir / name
        if (folder / "state.pt").is_file() and (folder / "memory.sqlite").is_file():
            state = torch.load(folder / "state.pt", weights_only=True)
            return state, json.loads(state.pop("progress")), folder / "memory.sqlite"
    return None
