"""Checkpoints: agent state, progress, what run they belong to, and a snapshot of the store.

A checkpoint is a folder: ``state.pt`` (weights, rates, RNG: plain tensors; progress and the
run's identity, its config and stream fingerprint, as JSON text; loaded with
``torch.load(weights_only=True)``, so no pickles) and ``memory.sqlite`` (the store as of the
checkpoint). It is written into a fresh, exclusively created temporary folder and swapped in by
renames. Two generations are kept, ``checkpoint/`` and ``checkpoint.old/``: ``load`` checks
each one (state readable, snapshot passes SQLite's integrity check and is a store) and falls
back to the older one, saying so, when the newer is damaged.

``Writer`` writes them on a background thread: the state's tensors are copied and the store's
database pinned as it is by a reader in an open read transaction (under a millisecond), and
the file copies, fsyncs and renames overlap with training.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from lifelong.errors import CheckpointError
from stores import EpisodicStore, StoreError
from stores.files import fsync_path
from stores.store import check_snapshot, write_snapshot

NAME, OLD = "checkpoint", "checkpoint.old"
TMP_PREFIX = ".checkpoint-"
AGENT_KEYS = ("model", "memory", "counters")  # what any agent state holds


@dataclass
class Checkpoint:
    state: dict  # the agent's state
    progress: dict  # where the run was
    identity: dict | None  # the run's config and stream fingerprint (None: older checkpoints)
    snapshot: Path  # the store's database as of the checkpoint
    generation: str  # NAME or OLD


def _copied(value):
    """A copy that later training cannot change (state dicts hold the live weights)."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return type(value)((k, _copied(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_copied(v) for v in value)
    return value


def capture(agent_state: dict, progress: dict, store: EpisodicStore, identity: dict | None):
    """Everything one checkpoint holds, copied: (state with progress, pinned database)."""
    state = {**_copied(agent_state), "progress": json.dumps(progress)}
    if identity is not None:
        state["identity"] = json.dumps(identity)
    return state, store.snapshot()


def _remove(path: Path) -> None:
    """Remove a file, folder or link at ``path`` without following links."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)


def write(run_dir: Path, state: dict, database) -> None:
    """Write a captured checkpoint and swap it in; nothing is left behind if it fails."""
    try:
        tmp = Path(tempfile.mkdtemp(dir=run_dir, prefix=TMP_PREFIX))
        tmp.chmod(0o755)
    except BaseException:
        database.close()
        raise
    try:
        buffer = io.BytesIO()  # torch's own file writer hides ENOSPC in a RuntimeError
        torch.save(state, buffer)
        with open(tmp / "state.pt", "xb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        try:
            write_snapshot(database, tmp / "memory.sqlite")
        finally:
            database.close()
        fsync_path(tmp)
        final, old = run_dir / NAME, run_dir / OLD
        if final.is_dir() and not final.is_symlink():  # keep it as the previous generation
            _remove(old)
            os.rename(final, old)
        else:
            _remove(final)
        os.rename(tmp, final)
        fsync_path(run_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class Writer:
    """Checkpoints written on a background thread, one at a time. ``save`` returns once the
    checkpoint is captured; ``wait`` returns once it is on disk, and raises what writing it
    raised. ``last_progress`` is the progress of the newest checkpoint known to be on disk."""

    def __init__(self, run_dir: Path, identity: dict | None = None) -> None:
        self.run_dir = run_dir
        self.identity = identity
        self.last_progress: dict | None = None
        self._pending: dict | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def save(self, agent_state: dict, progress: dict, store: EpisodicStore) -> None:
        self.wait()
        captured = capture(agent_state, progress, store, self.identity)
        self._pending = json.loads(captured[0]["progress"])
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
            if self._error is None:
                self.last_progress = self._pending
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def _read(folder: Path) -> Checkpoint:
    """One generation, checked; CheckpointError saying what is wrong with it."""
    if not (folder / "state.pt").is_file() or not (folder / "memory.sqlite").is_file():
        raise CheckpointError(f"{folder} is incomplete (state.pt or memory.sqlite missing)")
    try:
        state = torch.load(folder / "state.pt", weights_only=True)
        progress = json.loads(state.pop("progress"))
        identity = json.loads(state.pop("identity")) if "identity" in state else None
    except Exception as exc:  # truncated, random or foreign bytes: torch raises many types
        raise CheckpointError(
            f"{folder / 'state.pt'} is damaged ({type(exc).__name__}: {str(exc)[:80]})"
        ) from None
    missing = [k for k in AGENT_KEYS if k not in state]
    if missing or not isinstance(progress, dict):
        raise CheckpointError(f"{folder / 'state.pt'} is not a lifelong checkpoint")
    try:
        check_snapshot(folder / "memory.sqlite")
    except StoreError as exc:
        raise CheckpointError(str(exc)) from None
    return Checkpoint(state, progress, identity, folder / "memory.sqlite", folder.name)


def load(run_dir: Path, warn: Callable[[str], None] = print) -> Checkpoint | None:
    """The newest usable checkpoint generation, or None if the run never checkpointed.

    A damaged newer generation is moved aside (``checkpoint.damaged-TIME``, kept for a
    look) and the older one used, with a warning; CheckpointError if every one is damaged.
    Stale temporary folders of a killed writer are removed."""
    for stale in run_dir.glob(TMP_PREFIX + "*"):
        _remove(stale)
    _remove(run_dir / "checkpoint.tmp")  # what writers before generations left
    problems = []
    for name in (NAME, OLD):
        folder = run_dir / name
        if not folder.exists() or folder.is_symlink():
            continue
        try:
            found = _read(folder)
        except CheckpointError as exc:
            problems.append(str(exc))
            continue
        if problems:  # a newer generation was damaged: keep it out of the way, say so
            aside = run_dir / f"checkpoint.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
            os.rename(run_dir / NAME, aside)
            warn(
                f"warning: {problems[0]}; moved it to {aside.name} and resuming from the "
                f"previous checkpoint (experience {found.progress.get('experience')})"
            )
        return found
    if problems:
        raise CheckpointError(
            f"no usable checkpoint in {run_dir}: " + "; ".join(problems) + ". Nothing was "
            "changed; restore a checkpoint folder or delete the run folder to start over"
        )
    return None
