"""``Service``: one served run: the ingest log, the learner thread, and what it publishes.

The learner is ``lifelong.runner.run`` on its own thread, fed by the ingest log (see
``LogStream``): the loop, checkpoints, resume and results are those of ``lifelong run``.
As it learns it publishes, through the run hooks, a frozen copy of its network (predictions,
memory searches) and a snapshot of where it is (``/v1/run``, ``/metrics``, the dashboard),
so no request ever touches the training state.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lifelong import metrics
from lifelong.config import ConfigError, RunConfig
from lifelong.runner import RunHooks, run
from lifelong.serve.ingest_log import IngestLog, Receipt
from lifelong.serve.log_stream import LogStream
from lifelong.serve.published import Snapshot
from streams import StreamError
from streams.validate import as_features, as_labels, check_pair


class BadRequest(ValueError):
    """A request whose data cannot be learned from (answered 400, nothing stored)."""


class QueueFull(RuntimeError):
    """The learner is too far behind to take more now (answered 429 with Retry-After)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class Counters:
    """What /metrics counts (written by the learner thread and the handlers)."""

    predict_seconds: float = 0.0
    predict_requests: int = 0
    refused: int = 0  # 429s
    step_seconds: collections.deque = field(default_factory=lambda: collections.deque(maxlen=200))
    rate: collections.deque = field(default_factory=lambda: collections.deque(maxlen=600))


class Service(RunHooks):
    def __init__(
        self,
        cfg: RunConfig,
        run_dir: str | Path,
        *,
        max_queue: int = 20_000,
        publish_every: int = 50,
        echo=print,
    ) -> None:
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.max_queue, self.publish_every, self.echo = max_queue, publish_every, echo
        self.log = IngestLog(self.run_dir)
        self.stop_event = threading.Event()
        self.stream = LogStream(self.log, self.stop_event.is_set, poll=0.5)
        self.snapshot: Snapshot | None = None
        self.view: dict = {"status": "waiting", "rows": [], "untrained": []}
        self.counters = Counters()
        self.error: BaseException | None = None
        self.learned = 0  # stream examples learned (the learner's position)
        self._last_step = time.perf_counter()
        self._thread = threading.Thread(target=self._learn, name="learner", daemon=True)
        self._memory = None
        self._memory_lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> None:
        """Start the learner; raise its error if it fails before waiting for data (a folder
        made with another config, a busy folder, a damaged checkpoint)."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and not self._ready() and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.error is not None:
            raise self.error

    def _ready(self) -> bool:
        return self.stream.reached.is_set()

    def shutdown(self, timeout: float = 120.0) -> None:
        """Stop after the current step, checkpoint, and close."""
        self.stop_event.set()
        with self.log.arrived:
            self.log.arrived.notify_all()
        self._thread.join(timeout)
        with self._memory_lock:
            if self._memory is not None:
                self._memory.close(save=False)
                self._memory = None
        self.log.close()

    def _learn(self) -> None:
        try:
            self.result = run(
                self.cfg,
                self.run_dir,
                live=self.stream,
                hooks=self,
                stop_event=self.stop_event,
                echo=self.echo,
            )
            self.view = {**self.view, "status": "stopped"}
        except ConfigError as exc:
            if self.stop_event.is_set() and self.log.last_seq == 0:
                self.view = {**self.view, "status": "stopped"}  # stopped before any data
                return
            self._failed(exc)
        except BaseException as exc:
            self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        self.error = exc
        self.view = {**self.view, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        self.echo(f"learner stopped: {type(exc).__name__}: {exc}")

    # -- run hooks (the learner thread) ---------------------------------------------------
    def started(self, agent, progress) -> None:
        self.learned = progress.position
        self._publish(agent, progress, status="learning")

    def stepped(self, agent, progress) -> None:
        now = time.perf_counter()
        self.counters.step_seconds.append(now - self._last_step)
        self._last_step = now
        self.learned = progress.position
        if agent.steps % self.publish_every == 0:
            self._publish(agent, progress)

    def experience_ended(self, agent, progress, summary: dict) -> None:
        self._publish(agent, progress, summary=summary)

    def _publish(self, agent, progress, status: str | None = None, summary=None) -> None:
        now = time.time()
        self.snapshot = Snapshot.of(agent, progress.experience, now)
        memory = agent.memory
        n = len(memory)
        by_class = torch.bincount(memory.y[:n], minlength=self.cfg.n_classes).tolist()
        tasks = memory.task[:n]
        by_task = {str(int(t)): int(c) for t, c in zip(*torch.unique(tasks, return_counts=True))}
        self.counters.rate.append((now, progress.position))
        R = metrics.matrix_from_rows(progress.rows)
        view = {
            **self.view,
            "status": status or self.view["status"],
            "experience": progress.experience,
            "batch": progress.batch,
            "position": progress.position,
            "steps": agent.steps,
            "gradient_steps": agent.grad_steps,
            "rows": [list(r) for r in progress.rows],
            "untrained": list(progress.untrained or []),
            "memory": {"size": n, "capacity": memory.capacity, "by_class": by_class},
            "memory_by_task": by_task,
            "published_step": agent.steps,
        }
        if summary is not None or len(R):
            view["summary"] = metrics.summary(R, progress.untrained) if len(R) else {}
        self.view = view  # one assignment: readers see the old view or the new, whole

    # -- ingest (the HTTP handlers' threads) ----------------------------------------------
    def observe(self, x, y, task_id: int | None, key: str | None) -> Receipt:
        """Check a labelled batch and commit it to the ingest log (then it is acknowledged)."""
        self._refuse_if_failed()
        xs, ys = self._checked(x, y, "batch")
        if task_id is not None and (isinstance(task_id, bool) or task_id < 0):
            raise BadRequest(f"task_id must be an integer >= 0, got {task_id!r}")
        pending = self.queue_depth()
        if pending + len(ys) > self.max_queue:
            self.counters.refused += 1
            rate = self.examples_per_second() or 100.0
            raise QueueFull(
                f"the learner is {pending} examples behind (limit {self.max_queue}); retry later",
                retry_after=max(1, int(np.ceil((pending + len(ys) - self.max_queue) / rate))),
            )
        return self.log.append_batch(xs, ys, task_id, key)

    def end_experience(self, x_test, y_test, key: str | None) -> Receipt:
        """Commit the open experience's end, with its test set if one is given."""
        self._refuse_if_failed()
        if x_test is None and y_test is None:
            shape = self.log.input_shape or [0]
            xs, ys = np.zeros((0, *shape), np.float32), np.zeros(0, np.int64)
        else:
            xs, ys = self._checked(x_test, y_test, "test set")
        return self.log.end_experience(xs, ys, key)

    def _checked(self, x, y, what: str) -> tuple[np.ndarray, np.ndarray]:
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

    def _refuse_if_failed(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"the learner has stopped ({self.view.get('error')})")

    # -- queries --------------------------------------------------------------------------
    def predict(self, x, adapt: bool = False) -> tuple[np.ndarray, np.ndarray, Snapshot]:
        """Labels and probabilities from the published weights (adapted per example on its
        nearest memories with ``adapt``)."""
        snap = self.snapshot
        if snap is None:
            raise LookupError("nothing learned yet: POST /v1/observe first")
        started = time.perf_counter()
        xs, _ = self._checked(x, np.zeros(len(x), np.int64), "predict")
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
                from stores import EpisodicStore

                path = self.run_dir / "memory"
                if not (path / "memory.sqlite").exists():
                    raise LookupError("no memories yet: the first checkpoint writes them")
                self._memory = EpisodicStore.open(path, readonly=True)
            yield self._memory

    def queue_depth(self) -> int:
        """Examples acknowledged but not learned yet."""
        return self.log.received - self.learned

    def examples_per_second(self) -> float | None:
        """Learning throughput over the last published minute."""
        points = list(self.counters.rate)
        recent = [p for p in points if p[0] >= points[-1][0] - 60] if points else []
        if len(recent) < 2 or recent[-1][0] <= recent[0][0]:
            return None
        return (recent[-1][1] - recent[0][1]) / (recent[-1][0] - recent[0][0])

    def state(self) -> dict:
        """The run as of its last publication, plus the live counters."""
        view = dict(self.view)
        R = metrics.matrix_from_rows(view.pop("rows"))
        view["matrix"] = R.tolist()
        view["received"] = self.log.received
        view["learned"] = self.learned
        view["queued_examples"] = self.queue_depth()
        view["experiences_ended"] = self.log.experience
        view["examples_per_second"] = self.examples_per_second()
        view["history"] = [[round(t, 3), n] for t, n in self.counters.rate]
        return metrics.json_ready(view)
