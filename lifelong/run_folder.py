"""The run folder's own safety: one process at a time, an event log cut to whole lines.

``FolderLock`` is taken before anything in the folder is read or written, so a second
``lifelong run`` on the same ``--out`` is refused at once, naming the first one's pid, instead
of restoring over its live store. ``EventLog`` is ``metrics.jsonl``: one JSON event a line,
each written whole; on resume it is cut back to the events the checkpoint counted, or rebuilt
from the checkpoint when the file lost some, never padded or truncated blindly.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from lifelong.config import ConfigError
from lifelong.errors import RunFolderBusy
from stores.files import write_atomic
from stores.folder import release_lock, try_lock

LOCK_NAME = "run.lock"


class FolderLock:
    """An exclusive flock on ``run_dir/run.lock`` (the folder is created if missing)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.created = False
        self._fd: int | None = None

    def __enter__(self) -> FolderLock:
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise ConfigError(f"--out {self.run_dir} is a file, not a folder")
        self.created = not self.run_dir.exists()
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd, holder = take_lock(self.run_dir / LOCK_NAME)
        except OSError as exc:
            raise ConfigError(f"cannot use run folder {self.run_dir}: {exc.strerror}") from None
        if fd is None:
            raise RunFolderBusy(
                f"run folder {self.run_dir} is in use by another lifelong process "
                f"(pid {holder}); wait for it to finish or stop it, or use another --out"
            )
        self._fd = fd
        return self

    def holds_only_itself(self) -> bool:
        """True while the folder holds nothing but the lock (a run that never started)."""
        return [p.name for p in self.run_dir.iterdir()] == [LOCK_NAME]

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            release_lock(self._fd)
            self._fd = None


def take_lock(lock: Path) -> tuple[int | None, str]:
    """An exclusive flock on ``lock`` with this process's pid written in it: (descriptor,
    ""), or (None, the holder's pid) while another process holds it."""
    fd = try_lock(lock)
    if fd is None:
        return None, lock.read_text(errors="replace").strip() or "unknown"
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd, ""


def when_free(work: Callable, patience: float, should_stop: Callable[[], bool] = bool):
    """``work()``, tried again while it meets a busy run folder for up to ``patience``
    seconds: a process killed a moment ago (a served learner, a sweep's worker) may not
    have released its lock yet."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return work()
        except RunFolderBusy:
            if time.monotonic() >= deadline or should_stop():
                raise
            time.sleep(0.2)


def read_events(path: Path) -> list[dict]:
    """The whole, valid JSON lines of an event log (a cut-off or garbled line is skipped)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    events = []
    for line in data.split(b"\n")[:-1]:  # the part after the last newline is not whole
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if isinstance(event, dict):
                events.append(event)
    return events


class EventLog:
    """``metrics.jsonl``, holding exactly the first ``keep`` events (or ``rebuild()``'s)."""

    def __init__(
        self,
        path: Path,
        keep: int,
        rebuild: Callable[[], list[dict]],
        warn: Callable[[str], None],
    ) -> None:
        self.path = path
        events = read_events(path)
        if len(events) < keep:
            rebuilt = rebuild()
            warn(
                f"warning: {path.name} held {len(events)} of the checkpoint's {keep} events; "
                f"rebuilt it from the checkpoint ({keep - len(rebuilt)} curve points lost)"
            )
            events = rebuilt
        else:
            events = events[:keep]
        # rewritten whole (a fresh file, replacing whatever was at the path, link or not)
        write_atomic(path, "".join(json.dumps(e) + "\n" for e in events))
        self.count = len(events)
        self._file = open(path, "a")  # noqa: SIM115 - open for the run, closed in close()

    def write(self, event: dict) -> None:
        self._file.write(json.dumps(event) + "\n")  # one write of a whole line
        self._file.flush()
        self.count += 1

    def sync(self) -> None:
        """On disk before a checkpoint that counts these events is written."""
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()
