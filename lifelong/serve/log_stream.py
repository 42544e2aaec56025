"""The ingest log as the runner's live stream: experiences whose batches arrive over time.

The run loop is the one ``lifelong run`` uses; this only says where its batches come from.
Experience ``i`` starts with its first logged batch and ends at its logged end, whose test
set joins the accuracy matrix. Batches are learned in log order, each split into
``batch_size`` steps, so a checkpoint's (experience, batch) names one place in the log. A
batch sent without labels is learned at its labels record, in the experience open then.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import torch

from lifelong.config import ConfigError
from lifelong.serve.ingest_log import IngestLog, Record
from streams import Experience


class LogMismatch(ConfigError):
    """The run folder's ingest log is not the one its checkpoint learned from."""


class LogStream:
    def __init__(
        self,
        log: IngestLog,
        should_stop: Callable[[], bool],
        poll: float = 0.5,
        on_first_get: Callable[[], None] = lambda: None,
        on_idle: Callable[[], None] = lambda: None,
    ) -> None:
        self.log = log
        self.should_stop = should_stop
        self.poll = poll
        self.name = "serve"
        self.timed = True  # its batches carry when they were logged: real time's wall clock
        self.scenario = "class"
        self.ledger = None  # the log itself is the ledger: append-only, in the run folder
        self.taken_here = 0  # experiences ended in this process
        self.tests: list[Experience] = []  # test sets of the ended experiences
        # called when the run first asks for data: its folder checks have passed
        self._on_first_get: Callable[[], None] | None = on_first_get
        self.on_idle = on_idle  # called before each wait for data: everything logged is learned

    @property
    def identity(self) -> dict:
        """What a checkpoint records of the log it learned from."""
        return {"id": self.log.log_id}

    def resume_from(self, progress: dict) -> None:
        """The checkpoint's (experience, batch) is a place in the log, so the log must be the
        one it learned from and reach that place; ``LogMismatch`` otherwise, naming both
        files and the ways out, never a silent skip or a relearning."""
        log, run = self.log, self.log.path.parent
        way_out = (
            f"serve another --out, or rerun with --reset-log to move {run}'s learned state "
            "and this log aside and start the folder afresh"
        )
        theirs = (progress.get("log") or {}).get("id")
        if theirs is not None and theirs != log.log_id:
            raise LogMismatch(
                f"{log.path} (log {log.log_id[:12]}) is not the ingest log {run}/checkpoint "
                f"learned from (log {theirs[:12]}): it was deleted or replaced; {way_out}"
            )
        position, experience = progress.get("position", 0), progress.get("experience", 0)
        if log.received < position or log.experience < experience:
            raise LogMismatch(
                f"{log.path} ends at example {log.received} (experience {log.experience}); "
                f"{run}/checkpoint has learned to example {position} (experience "
                f"{experience}): an older copy of the log; {way_out}"
            )

    def get(self, i: int) -> Experience | None:
        """Experience ``i`` once its first batch is logged (its test set comes at its end);
        None if asked to stop while waiting."""
        if self._on_first_get is not None:
            self._on_first_get()
            self._on_first_get = None
        if len(self.tests) < i:
            self.tests = [_test_set(r) for r in self.log.ends_before(i)]
        while (before := self.log.first_of(i)) is None:
            if self.should_stop():
                return None
            self.on_idle()
            time.sleep(self.poll)  # the server appends from another process: look again
        first = self.log.read(before, 1)[0]
        x = torch.from_numpy(first.x)
        y = torch.zeros(0, dtype=torch.int64) if first.y is None else torch.from_numpy(first.y)
        return Experience(i, x[: len(y)], y, x[:0], y[:0], first.task_id, ())

    def batches(self, exp: Experience, start: int, size: int) -> Iterator:
        """(b, x, y, logged) for steps ``start``, ``start + 1``, ... of the experience,
        waiting for batches as they are logged (``logged``: when, in seconds since the
        epoch); returns at its end record (or when asked to stop)."""
        after, b = self.log.first_of(exp.id), 0
        while True:
            found = self.log.read(after, 16)
            if not found:
                if self.should_stop():
                    return
                self.on_idle()
                time.sleep(self.poll)
                continue
            for r in found:
                after = r.seq
                if r.kind == "end":
                    self.tests.append(_test_set(r))
                    self.taken_here += 1
                    return
                if r.kind == "unlabelled":  # learned when its labels record comes
                    continue
                x, y = torch.from_numpy(r.x), torch.from_numpy(r.y)
                for k in range(0, len(y), size):
                    if b >= start:
                        yield b, x[k : k + size], y[k : k + size], r.received
                    b += 1

    def known(self) -> list[Experience]:
        return list(self.tests)


def _test_set(r: Record) -> Experience:
    x, y = torch.from_numpy(r.x), torch.from_numpy(r.y)
    classes = tuple(sorted(set(y.tolist())))
    return Experience(r.experience, x[:0], y[:0], x, y, r.task_id, classes)
