"""``Service``: the server's side of a served run: the ingest log, the learner process,
and what the learner publishes.

The learner is ``lifelong run``'s loop in a child process (``lifelong.serve.learner``), fed
by the ingest log: checkpoints, resume and results are those of ``lifelong run``, and
training never competes with request handling for Python's GIL (on a thread it learned at
0.35-0.4x of ``lifelong run``'s rate under load). A watcher thread picks up the view and
weights the learner publishes, so no request ever touches the training state.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sqlalchemy.exc import OperationalError

from lifelong import metrics
from lifelong.config import ConfigError, RunConfig
from lifelong.errors import RunFolderBusy
from lifelong.run_folder import take_lock
from lifelong.serve import learner, reset
from lifelong.serve.history import History
from lifelong.serve.ingest_log import IngestLog, Receipt
from lifelong.serve.published import Snapshot
from lifelong.serve.refusals import (
    BadRequest,
    BatchTooLarge,
    LogDiskFull,
    QueueFull,
    check_task_id,
)
from stores.files import is_disk_full, write_atomic
from stores.folder import release_lock
from streams import StreamError
from streams.validate import as_features, as_labels, check_pair


def _serve_lock(folder: Path) -> int:
    """One server per run folder: an exclusive flock on ``RUN/serve/server.lock``."""
    if folder.parent.exists() and not folder.parent.is_dir():
        raise ConfigError(f"--out {folder.parent} is a file, not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    fd, holder = take_lock(folder / "server.lock")
    if fd is None:
        raise RunFolderBusy(
            f"run folder {folder.parent} is served by another lifelong serve (pid {holder}); "
            "stop it first, or use another --out"
        )
    return fd


@dataclass
class Counters:
    """What /metrics and the dashboard count on the server's side (the handlers and the
    watcher write them)."""

    predict_seconds: float = 0.0
    predict_requests: int = 0
    refused: int = 0  # 429s
    history: History = field(default_factory=History)  # the last ten minutes, for charts


class Service:
    """One served run folder: ``start`` the learner, append to the log (``observe``,
    ``end_experience``), read what it published (``predict``, ``memory``, ``state``),
    ``shutdown``. One per folder (a lock in ``RUN/serve/``); the HTTP layer is separate."""

    def __init__(
        self,
        cfg: RunConfig,
        run_dir: str | Path,
        *,
        max_queue: int = 20_000,
        publish_every: int = 50,
        reset_log: bool = False,
        echo=print,
    ) -> None:
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.max_queue, self.publish_every, self.echo = max_queue, publish_every, echo
        self.folder = self.run_dir / learner.FOLDER
        self._lock = _serve_lock(self.folder)  # before anything of the folder is touched
        if reset_log:
            reset.reset_log(self.run_dir, echo)
        self.log = IngestLog(self.run_dir)
        self.stop_event = threading.Event()  # the folder door stops with the service
        self.snapshot: Snapshot | None = None
        self.view: dict = {"status": "waiting", "position": 0}
        self.results: dict = {"rows": [], "untrained": [], "summary": {}}
        self.counters = Counters()
        self.error: str | None = None
        self.disk_problem: str | None = None  # set while the log's disk refuses appends
        self.process: subprocess.Popen | None = None
        self._seen: dict[str, int] = {}
        self._watcher = threading.Thread(target=self._watch, name="watcher", daemon=True)
        self._memory = None
        self._memory_lock = threading.Lock()

    @property
    def learned(self) -> int:
        """Stream examples learned, as of the learner's last view."""
        return int(self.view.get("position") or 0)

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, timeout: float = 300.0) -> None:
        """Start the learner process and wait until it waits for data (or learns); raise its
        error if it fails before (a folder made with another config, a busy folder, a
        damaged checkpoint)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for name in (learner.VIEW, learner.WEIGHTS, learner.ERROR, learner.RESULTS):
            (self.folder / name).unlink(missing_ok=True)
        write_atomic(self.folder / learner.CONFIG, self.cfg.dumps())
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lifelong.serve.learner",
                str(self.run_dir),
                "--parent",
                str(os.getpid()),
                "--publish-every",
                str(self.publish_every),
            ],
            start_new_session=True,  # a terminal's Ctrl-C reaches the server, which stops it
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if (self.folder / learner.VIEW).exists():
                self._refresh()
                if self.view.get("status") == "failed":
                    self.process.wait(timeout=30)  # it has said why; now it exits
                break  # the learner passed its folder checks: it waits for data, or learns
            time.sleep(0.02)
        if self.process.poll() is not None:
            raise ConfigError(self._learner_error())
        self._watcher.start()

    def _learner_error(self) -> str:
        path = self.folder / learner.ERROR
        if path.exists():
            return path.read_text()
        if self.process.returncode == learner.DISK_FULL_EXIT:
            return (
                f"no space left on the disk of {self.run_dir}; the learner stopped (what it "
                "checkpointed is intact): free some space and start the server again to resume"
            )
        return f"the learner process exited with status {self.process.returncode}"

    def shutdown(self, timeout: float = 300.0) -> None:
        """Stop the learner after its current step, checkpointed, and close."""
        self.stop_event.set()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._watcher.is_alive():
            self._watcher.join(5)
        self._refresh()
        with self._memory_lock:
            if self._memory is not None:
                self._memory.close(save=False)
                self._memory = None
        self.log.close()
        if self._lock is not None:
            release_lock(self._lock)
            self._lock = None

    def _watch(self) -> None:
        """Pick up what the learner publishes; notice if it dies."""
        while not self.stop_event.is_set():
            self._refresh()
            if self.process.poll() is not None and not self.stop_event.is_set():
                self.error = self._learner_error()
                self.view = {**self.view, "status": "failed", "error": self.error}
                self.echo(f"the learner has stopped: {self.error}")
                return
            self.stop_event.wait(0.05)

    def _refresh(self) -> None:
        """Load view.json and weights.pt if they changed (each is renamed in whole)."""
        view = self._changed(learner.VIEW)
        if view is not None:
            try:
                loaded = json.loads(view.read_text())
            except (OSError, ValueError):
                loaded = None  # replaced while read: the next look takes the new one
            if loaded is not None:
                self.view = loaded
                self.counters.history.note(loaded)
        results = self._changed(learner.RESULTS)
        if results is not None:
            try:
                self.results = json.loads(results.read_text())
            except (OSError, ValueError):
                self._seen.pop(learner.RESULTS, None)  # retry at the next look
        weights = self._changed(learner.WEIGHTS)
        if weights is not None:
            try:
                self.snapshot = Snapshot.load(weights, self.cfg, time.time())
            except (OSError, RuntimeError, EOFError):
                self._seen.pop(learner.WEIGHTS, None)  # retry at the next look

    def _changed(self, name: str) -> Path | None:
        path = self.folder / name
        try:
            stamp = path.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        if self._seen.get(name) == stamp:
            return None
        self._seen[name] = stamp
        return path

    # -- ingest (the HTTP handlers' threads) ----------------------------------------------
    def observe(self, x, y, task_id: int | None, key: str | None) -> Receipt:
        """Check a labelled batch and commit it to the ingest log (then it is acknowledged)."""
        self.refuse_if_failed()
        xs, ys = self.check_arrays(x, y, "batch")
        check_task_id(task_id)
        self.make_room(len(ys))
        with self.disk_watch():
            return self.log.append_batch(xs, ys, task_id, key)

    def make_room(self, n: int) -> None:
        """Refuse ``n`` more examples to learn when they would overfill the queue: a batch
        larger than the queue (413), or a learner too far behind (429, with when to retry)."""
        self.check_batch_size(n)
        pending = self.queue_depth()
        if pending + n > self.max_queue:
            self.counters.refused += 1
            rate = self.examples_per_second() or 100.0
            raise QueueFull(
                f"the learner is {pending} examples behind (limit {self.max_queue}); retry later",
                retry_after=max(1, int(np.ceil((pending + n - self.max_queue) / rate))),
            )

    def check_batch_size(self, n: int) -> None:
        """A batch larger than the queue could never be taken whole (413)."""
        if n > self.max_queue:
            raise BatchTooLarge(
                f"a batch of {n} examples is larger than the queue (--max-queue "
                f"{self.max_queue}): the largest batch accepted is {self.max_queue} examples; "
                "split it"
            )

    def end_experience(self, x_test, y_test, key: str | None) -> Receipt:
        """Commit the open experience's end, with its test set if one is given."""
        self.refuse_if_failed()
        if x_test is None and y_test is None:
            shape = self.log.input_shape or [0]
            xs, ys = np.zeros((0, *shape), np.float32), np.zeros(0, np.int64)
        else:
            xs, ys = self.check_arrays(x_test, y_test, "test set")
        with self.disk_watch():
            return self.log.end_experience(xs, ys, key)

    @contextlib.contextmanager
    def disk_watch(self):
        """An append the disk could not hold is ``LogDiskFull`` (nothing of it is stored: its
        transaction is rolled back), and stays the service's health problem until an append
        succeeds again."""
        try:
            yield
        except OperationalError as exc:
            if "full" not in str(exc.orig):
                raise
            self.disk_problem = (
                f"the disk holding {self.run_dir} is full ({exc.orig}): observe answers 507 "
                "until space is freed"
            )
            raise LogDiskFull(
                f"the disk holding {self.run_dir} is full ({exc.orig}): nothing of this "
                "request was stored; free space, then retry"
            ) from None
        self.disk_problem = None

    def check_arrays(self, x, y, what: str) -> tuple[np.ndarray, np.ndarray]:
        """float32 examples of this run's shape, finite, and int64 labels of its classes;
        ``BadRequest`` naming the first problem."""
        try:
            try:
                x = np.asarray(x)
                y = np.asarray(y)
            except ValueError as exc:  # ragged lists
                raise BadRequest(f"{what}: x or y is not a rectangular array ({exc})") from None
            xt = as_features(x, f"{what} x")
            yt = as_labels(y, f"{what} y", self.cfg.n_classes)
            check_pair(xt, yt, what)
        except StreamError as exc:
            raise BadRequest(str(exc)) from None
        if len(yt) == 0:
            raise BadRequest(f"{what}: no examples")
        shape = self.log.input_shape
        if shape is not None and tuple(xt.shape[1:]) != tuple(shape):
            raise BadRequest(
                f"{what}: examples have shape {tuple(xt.shape[1:])}; this run's have {tuple(shape)}"
            )
        return xt.numpy(), yt.numpy()

    def health_problem(self) -> str | None:
        """Why the service cannot be trusted now (``/healthz`` answers 503 with it)."""
        return self._learner_problem() or self.disk_problem

    def _learner_problem(self) -> str | None:
        if self.error is not None:
            return f"the learner has stopped: {self.error}"
        if self.log.received < self.learned:
            return (
                f"the learner has learned {self.learned} examples but the ingest log holds "
                f"{self.log.received}: the log is not the one it learned from"
            )
        return None

    def refuse_if_failed(self) -> None:
        """Acknowledge nothing the learner would not learn (answered 503). A full disk is
        not refused here: each append tries it again (507 while it is still full)."""
        problem = self._learner_problem()
        if problem is not None and is_disk_full(RuntimeError(problem)):
            raise LogDiskFull(problem)
        if problem is not None:
            raise RuntimeError(problem)

    # -- queries --------------------------------------------------------------------------
    def predict(self, x, adapt: bool = False) -> tuple[np.ndarray, np.ndarray, Snapshot]:
        """Labels and probabilities from the published weights (adapted per example on its
        nearest memories with ``adapt``)."""
        started = time.perf_counter()
        xs, _ = self.check_arrays(x, np.zeros(len(x), np.int64), "predict")
        snap = self.snapshot
        if snap is None:
            raise LookupError("nothing learned yet: POST /v1/observe first")
        if adapt:
            with self.memory() as store:
                labels, probs = snap.adapted(torch.from_numpy(xs), store, self.cfg.learner())
        else:
            labels, probs = snap.predict(torch.from_numpy(xs))
        self.counters.predict_seconds += time.perf_counter() - started
        self.counters.predict_requests += 1
        return labels, probs, snap

    @contextlib.contextmanager
    def memory(self):
        """The run's episodic store, read-only (it shows the last checkpoint's flush)."""
        with self._memory_lock:
            if self._memory is None:
                from stores import EpisodicStore, StoreNotReady

                try:  # the first checkpoint makes it: until it has, 503 (ask again)
                    self._memory = EpisodicStore.open_reader(self.run_dir / "memory")
                except StoreNotReady as exc:
                    raise LookupError(f"no memories yet: {exc}") from None
            yield self._memory

    def caught_up(self) -> bool:
        """Everything acknowledged is learned and every logged experience end evaluated.
        The rows counted are results.json's own (not the view's count): the view can be
        picked up a moment before the results it counts, and a caller then reads the matrix."""
        evaluated = len(self.results.get("rows") or [])
        return self.queue_depth() == 0 and evaluated >= self.log.experience

    def queue_depth(self) -> int:
        """Examples acknowledged but not learned yet."""
        return self.log.received - self.learned

    def examples_per_second(self) -> float | None:
        """Learning throughput over the last minute, to now: it falls to 0 while idle."""
        return self.counters.history.examples_per_second(self.learned)

    def state(self) -> dict:
        """The run as of its last publication, plus the live counters."""
        view = dict(self.view)
        results = self.results
        view["matrix"] = metrics.matrix_from_rows(results.get("rows", [])).tolist()
        view["experiences_evaluated"] = len(view["matrix"])  # agrees with the matrix shown
        view["untrained"] = results.get("untrained", [])
        view["summary"] = results.get("summary", {})
        view["received"] = self.log.received
        view["learned"] = self.learned
        view["queued_examples"] = self.queue_depth()
        view["experiences_ended"] = self.log.experience
        view["late_labels"] = self.log.late.to_dict()
        view["examples_per_second"] = self.examples_per_second()
        view["history"] = self.counters.history.to_now(view)
        if view.get("status") == "learning" and self.caught_up():
            view["status"] = "caught up"  # learned all it was sent; waiting for more
        return metrics.json_ready(view)
