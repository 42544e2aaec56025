"""Follow mode: experiences arrive as ``.npz`` files in a folder, each learned once, in
the order they arrived.

Each file holds ``x``, ``y``, ``x_test`` and ``y_test`` (and optionally ``task_id``, and
``t``: when each training example arrived, in seconds, which a run on the wall clock needs:
``--real-time --wall-clock``; the stream's time never goes back, within a file or across). A
ledger of the files taken (name, size, hash), saved in every checkpoint, makes each file one
experience exactly once: a file that arrives later is taken later whatever its name, and a
file already learned that changes or vanishes is refused, since its test set is part of the
accuracy matrix. Hidden files (``.name.npz``, the temporary names writers use) are never
taken, and a file that is not yet a whole zip archive is waited for.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from streams import Experience, StreamError
from streams.npz import ZIP_MAGIC, NpzError, NpzTooLarge, NpzTruncated, read_npz
from streams.validate import as_features, as_labels, check_pair

REQUIRED = ("x", "y", "x_test", "y_test")
MAX_TASK_FILE_BYTES = 4 << 30  # a task file's arrays, inflated: more is refused unread


class NotReady(Exception):
    """A task file that is still being written (not a whole zip archive yet)."""


class FolderStream:
    """Experience i is the i-th file taken; ``get`` waits until a new file is there."""

    def __init__(
        self,
        folder: str | Path,
        n_classes: int,
        poll_seconds: float = 1.0,
        max_experiences: int | None = None,
        idle_timeout: float | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        echo: Callable[[str], None] = print,
        timed: bool = False,
    ) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise StreamError(f"follow folder {self.folder} does not exist")
        self.n_classes = n_classes
        self.poll = poll_seconds
        self.max_experiences = max_experiences  # new files taken by this process, at most
        self.idle_timeout = idle_timeout
        self.should_stop = should_stop
        self.echo = echo
        self.timed = timed  # its examples carry their arrival seconds (``t``): the wall clock's
        self.recorded_times = timed  # a stream's own times, not this machine's clock
        self.times: dict[int, np.ndarray] = {}  # experience -> t of each training example
        self.ledger: list[dict] = []  # files taken: name, size, blake2b; saved in checkpoints
        self.loaded: list[Experience] = []
        self.taken_here = 0
        self.scenario = "class"
        self.name = f"follow:{self.folder}"

    def resume_from(self, progress: dict) -> None:
        """Adopt a checkpoint's ledger (rebuilt by name for checkpoints from before it)."""
        files = progress.get("files")
        if files is None:
            self.resume_by_name(progress["experience"] + (progress["batch"] > 0))
        else:
            self.resume(files)

    def resume(self, ledger: list[dict]) -> None:
        """Adopt a checkpoint's ledger: its files are experiences 0.. in that order."""
        self.ledger = [dict(entry) for entry in ledger]

    def get(self, i: int) -> Experience | None:
        """The i-th experience, waiting for a new file if i is past the ledger; None when
        stopped, idle too long, or after ``max_experiences`` new files."""
        while len(self.loaded) < min(i + 1, len(self.ledger)):
            self.loaded.append(self._reload(len(self.loaded)))
        if i < len(self.loaded):
            return self.loaded[i]
        if self.max_experiences is not None and self.taken_here >= self.max_experiences:
            return None
        return self._take_next(i)

    def take_next(self) -> Experience | None:
        """The next new file's experience, waiting for one; None when stopped or idle."""
        return self._take_next(len(self.ledger))

    def _take_next(self, i: int) -> Experience | None:
        waited, said = 0.0, set()
        while True:
            for path in self._new_files():
                try:
                    exp, entry = self._load(path, i)
                except NotReady as exc:
                    if path.name not in said:
                        self.echo(f"waiting for {path.name} to be complete ({exc})")
                        said.add(path.name)
                    break  # arrival order: nothing later is taken before it
                self.ledger.append(entry)
                self.loaded.append(exp)
                self.taken_here += 1
                return exp
            if self.should_stop() or (
                self.idle_timeout is not None and waited >= self.idle_timeout
            ):
                return None
            time.sleep(self.poll)
            waited += self.poll

    def _new_files(self) -> list[Path]:
        """Files not taken yet, oldest first (modification time, then name)."""
        taken = {e["name"] for e in self.ledger}
        found = []
        for path in self.folder.glob("*.npz"):
            if path.name.startswith(".") or path.name in taken:
                continue
            try:
                found.append((path.stat().st_mtime_ns, path.name, path))
            except FileNotFoundError:  # renamed away between listing and looking
                continue
        return [p for _, _, p in sorted(found)]

    def resume_by_name(self, count: int) -> None:
        """Checkpoints from before the ledger took files in name order: rebuild it that way
        from the first ``count`` files."""
        names = sorted(p for p in self.folder.glob("*.npz") if not p.name.startswith("."))
        self.ledger = [_entry(p.name, p.read_bytes()) for p in names[:count]]

    def _reload(self, i: int) -> Experience:
        """Ledger file i, refused if it changed or vanished since it was learned."""
        entry = self.ledger[i]
        path = self.folder / entry["name"]
        if not path.is_file():
            raise StreamError(
                f"{entry['name']}, learned as experience {i}, is gone from {self.folder}; "
                "put it back (its test set is part of the accuracy matrix) or use a new --out"
            )
        try:
            exp, now = self._load(path, i)
        except NotReady as exc:
            raise StreamError(f"{entry['name']}: unreadable ({exc})") from None
        if now != entry:
            raise StreamError(
                f"{entry['name']}, learned as experience {i}, has changed since "
                f"({entry['size']} -> {now['size']} bytes); a learned file is never learned "
                "again: restore it, and send new data as a new file"
            )
        return exp

    def known(self) -> list[Experience]:
        return list(self.loaded)

    def _load(self, path: Path, i: int) -> tuple[Experience, dict]:
        """The experience in a task file and its ledger entry, both from one read of its
        bytes (the hash is of exactly what was learned)."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:  # renamed away since it was listed
            raise NotReady("it is gone") from None
        except OSError as exc:
            raise StreamError(f"{path.name}: cannot be read ({exc.strerror})") from None
        if len(raw) < len(ZIP_MAGIC[0]):
            raise NotReady(f"{len(raw)} bytes so far")
        try:
            data = read_npz(raw, MAX_TASK_FILE_BYTES, path.name)
        except NpzTruncated as exc:
            raise NotReady(str(exc)) from None
        except NpzError as exc:
            hint = " (split it into several task files)" if isinstance(exc, NpzTooLarge) else ""
            raise StreamError(f"{exc}{hint}") from None
        missing = [k for k in REQUIRED if k not in data]
        if missing:
            raise StreamError(
                f"{path.name}: missing array(s) {missing}; a task file needs {list(REQUIRED)}"
            )
        arrays = {k: data[k] for k in REQUIRED}
        task = _task_id(data["task_id"], path.name) if "task_id" in data else 0
        what = path.name
        x = as_features(arrays["x"], f"{what} x")
        y = as_labels(arrays["y"], f"{what} y", self.n_classes)
        xt = as_features(arrays["x_test"], f"{what} x_test")
        yt = as_labels(arrays["y_test"], f"{what} y_test", self.n_classes)
        check_pair(x, y, f"{what} train")
        check_pair(xt, yt, f"{what} test")
        if xt.shape[1:] != x.shape[1:]:
            raise StreamError(
                f"{what}: x_test examples have shape {tuple(xt.shape[1:])}, "
                f"x's have {tuple(x.shape[1:])}"
            )
        if self.loaded and x.shape[1:] != self.loaded[0].x_train.shape[1:]:
            raise StreamError(
                f"{what}: examples have shape {tuple(x.shape[1:])}, the first task file's "
                f"have {tuple(self.loaded[0].x_train.shape[1:])}"
            )
        if len(yt) == 0:
            raise StreamError(f"{what} has no test data")
        if self.timed:
            self.times[i] = self._arrival_times(data, len(y), i, what)
        exp = Experience(i, x, y, xt, yt, task, tuple(sorted(set(y.tolist()))))
        return exp, _entry(path.name, raw)

    def _arrival_times(self, data: dict, n: int, i: int, what: str) -> np.ndarray:
        """A timed file's ``t``: one finite second count per training example, never going
        back (within the file, or before the last example of the file before)."""
        if "t" not in data:
            raise StreamError(
                f"{what}: no t array; on the wall clock (--wall-clock) each task file needs t, "
                "the arrival time of each training example in seconds"
            )
        t = data["t"]
        if t.dtype.kind not in "iuf" or t.shape != (n,):
            raise StreamError(
                f"{what}: t must be {n} numbers (one a training example), got {t.dtype} of "
                f"shape {t.shape}"
            )
        t = t.astype(np.float64)
        if not np.isfinite(t).all():
            raise StreamError(
                f"{what}: t has NaN or inf at example {int(np.argmin(np.isfinite(t)))}"
            )
        back = np.flatnonzero(np.diff(t) < 0)
        if len(back):
            raise StreamError(
                f"{what}: t goes back at example {int(back[0]) + 1} ({t[back[0]]} -> "
                f"{t[back[0] + 1]}); a stream's examples arrive in time order"
            )
        before = self.times.get(i - 1)
        if before is not None and len(before) and len(t) and t[0] < before[-1]:
            raise StreamError(
                f"{what}: its first example arrives at {t[0]}, before the last of the file "
                f"before it ({before[-1]}); the stream's time never goes back"
            )
        return t


def _entry(name: str, data: bytes) -> dict:
    """A ledger entry: what identifies a task file's contents."""
    return {
        "name": name,
        "size": len(data),
        "blake2b": hashlib.blake2b(data, digest_size=16).hexdigest(),
    }


def _task_id(value: np.ndarray, what: str) -> int:
    """A task file's ``task_id``: one non-negative integer."""
    if value.shape != () or value.dtype.kind not in "iu" or int(value) < 0:
        raise StreamError(
            f"{what}: task_id must be one integer >= 0, got {value.dtype} of shape {value.shape}"
        )
    return int(value)
