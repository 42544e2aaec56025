"""The folder door: task files dropped in a folder enter the same ingest log as HTTP batches.

Each new ``.npz`` task file (the format of ``lifelong run --follow``) is checked and logged
in one transaction: its training examples as batches, in the order ``lifelong run`` would
learn them, then its end with its test set. Its idempotency keys name the file, so a file is
taken once even across restarts, and the served run learns what ``lifelong run --follow``
would.
"""

from __future__ import annotations

import threading

from lifelong.config import RunConfig
from lifelong.follow import FolderStream
from lifelong.runner import learning_order
from lifelong.serve.ingest_log import IngestLog
from streams import StreamError

PREFIX = "file:"


class FolderDoor(threading.Thread):
    def __init__(
        self, cfg: RunConfig, log: IngestLog, stop: threading.Event, poll: float, echo=print
    ) -> None:
        super().__init__(name="folder-door", daemon=True)
        self.cfg, self.log, self.stop, self.echo = cfg, log, stop, echo
        self.folder = FolderStream(
            cfg.follow, cfg.n_classes, poll_seconds=poll, should_stop=stop.is_set, echo=echo
        )
        # files already logged are taken; only their names matter to the folder's scan
        self.folder.ledger = [{"name": n} for n in log.keys_like(PREFIX, ":end")]
        self.error: Exception | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                exp = self.folder.take_next()
            except StreamError as exc:  # a bad file: say so, and keep serving
                self.error = exc
                self.echo(f"folder door: {exc}")
                self.stop.wait(self.folder.poll)
                continue
            if exp is None:
                return
            name = self.folder.ledger[-1]["name"]
            order = learning_order(self.cfg, self.log.experience, exp.n_train)
            x, y = exp.x_train[order].numpy(), exp.y_train[order].numpy()
            size = self.cfg.batch_size
            batches = [(x[k : k + size], y[k : k + size]) for k in range(0, len(y), size)]
            keys = [f"{PREFIX}{name}:{b}" for b in range(len(batches))]
            end = (exp.x_test.numpy(), exp.y_test.numpy(), f"{PREFIX}{name}:end")
            try:
                self.log.append_many(batches, exp.task_id, keys, end=end)
            except ValueError as exc:
                self.error = exc
                self.echo(f"folder door: {name} refused: {exc}")
                continue
            self.echo(f"folder door: {name} logged as experience {self.log.experience - 1}")
