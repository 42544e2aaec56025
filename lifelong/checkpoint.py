"""Atomic checkpoints: agent state, progress and a snapshot of the memory store, together.

Everything is written into ``checkpoint.tmp/`` and then swapped in by renames, so a kill at
any moment leaves either the old checkpoint or the new one. Weights are plain tensors and
everything else is JSON text, so loading uses ``torch.load(weights_only=True)``: no pickles.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from stores import EpisodicStore

NAME, TMP, OLD = "checkpoint", "checkpoint.tmp", "checkpoint.old"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(run_dir: Path, agent_state: dict, progress: dict, store: EpisodicStore) -> None:
    tmp, final, old = run_dir / TMP, run_dir / NAME, run_dir / OLD
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    with open(tmp / "state.pt", "wb") as f:
        torch.save({**agent_state, "progress": json.dumps(progress)}, f)
        f.flush()
        os.fsync(f.fileno())
    store.snapshot(tmp / "memory.sqlite")
    _fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
    os.rename(tmp, final)
    _fsync_dir(run_dir)
    shutil.rmtree(old, ignore_errors=True)


def load(run_dir: Path) -> tuple[dict, dict, Path] | None:
    """(agent state, progress, store snapshot file) of the newest complete checkpoint."""
    for name in (NAME, OLD):  # OLD survives only a kill between the two renames
        folder = run_dir / name
        if (folder / "state.pt").is_file() and (folder / "memory.sqlite").is_file():
            state = torch.load(folder / "state.pt", weights_only=True)
            return state, json.loads(state.pop("progress")), folder / "memory.sqlite"
    return None
