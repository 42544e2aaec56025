"""The served run's learner: its own process, so training never shares a GIL with HTTP.

``python -m lifelong.serve.learner RUN_DIR --parent PID`` runs ``lifelong run``'s loop on the
ingest log (see ``LogStream``) with the config the server wrote to ``RUN/serve/``, and
publishes what requests need, each file written whole and renamed into place:
``view.json`` (where the run is: matrix, position, memory composition) every few steps and
``weights.pt`` (the network's tensors) every ``--publish-every`` steps and at experience
ends. It stops, checkpointed, on SIGTERM (the server's shutdown), and dies with its server
(``PR_SET_PDEATHSIG`` on Linux, and a parent check everywhere): a killed server leaves no
learner holding the run folder.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import io
import json
import math
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

import torch

from lifelong import metrics
from lifelong.config import RunConfig
from lifelong.errors import one_line_warnings
from lifelong.run_folder import when_free
from lifelong.runner import RunHooks, run
from lifelong.serve.ingest_log import IngestLog
from lifelong.serve.log_stream import LogStream
from lifelong.serve.published import published_state
from stores.files import is_disk_full, write_atomic

FOLDER = "serve"  # RUN/serve/: what the server and its learner pass each other
CONFIG, VIEW, WEIGHTS, ERROR = "learner.toml", "view.json", "weights.pt", "learner.error"
RESULTS = "results.json"  # the accuracy matrix and its metrics: rewritten at experience ends
DISK_FULL_EXIT = 3  # the learner's status when the disk filled (its error file may not fit)
TRACEBACK = "learner.traceback"  # where a learner that stopped on an error says where
LOSS_DECAY = 0.8  # the view's loss: an average of the readings (every 10 steps) decaying by this
VIEW_EVERY = 10  # steps between view.json rewrites (a few hundred bytes)


class Publisher(RunHooks):
    """The run hooks of a served run: publish the view and the weights for the server."""

    def __init__(self, folder: Path, cfg: RunConfig, publish_every: int, parent: int) -> None:
        self.folder, self.cfg = folder, cfg
        self.publish_every, self.parent = publish_every, parent
        self.status = "waiting"
        self.step_seconds: list[float] = []
        self.loss: float | None = None  # smoothed training loss; none read yet
        self._last = time.perf_counter()
        self._agent = self._progress = None
        self.clock = None  # real time's stream clock, if the run has one
        self._view_revealed = -1  # the clock's batches revealed at the last view
        self._view_step = self._weights_step = -1  # the steps last published
        self._weights_at = 0.0

    def parent_gone(self) -> bool:
        return os.getppid() != self.parent

    def clock_started(self, clock) -> None:
        self.clock = clock

    def started(self, agent, progress) -> None:
        self._agent, self._progress = agent, progress
        self.status = "learning"
        self._weights(agent, progress)
        self._results(progress)
        self._view(agent, progress)

    def idle(self) -> None:
        """Caught up with the log: publish what the last steps changed, so a paused stream
        shows every example learned (the weights at most twice a second)."""
        agent, progress = self._agent, self._progress
        if agent is None:
            return
        revealed = self.clock.arrived if self.clock is not None else -1
        if agent.steps != self._view_step or revealed != self._view_revealed:
            self._view(agent, progress)
        if agent.steps != self._weights_step and time.monotonic() - self._weights_at >= 0.5:
            self._weights(agent, progress)

    def stepped(self, agent, progress) -> None:
        self._agent, self._progress = agent, progress
        now = time.perf_counter()
        self.step_seconds = [*self.step_seconds[-199:], now - self._last]
        self._last = now
        if agent.steps % self.publish_every == 0:
            self._weights(agent, progress)
        if agent.steps % VIEW_EVERY == 0:
            self._view(agent, progress)

    def loss_read(self, step: int, loss: float) -> None:
        """The training loss the view shows: smoothed over the last ~5 readings (50 steps),
        one batch's loss being too noisy to read a trend from."""
        if math.isfinite(loss):
            old = self.loss
            self.loss = loss if old is None else LOSS_DECAY * old + (1 - LOSS_DECAY) * loss

    def experience_ended(self, agent, progress, summary: dict) -> None:
        self._weights(agent, progress)
        self._results(progress)
        self._view(agent, progress)

    def _results(self, progress) -> None:
        """The matrix so far, apart from the view: it changes only at experience ends, and
        rewriting it every few steps grew with the run."""
        R = metrics.matrix_from_rows(progress.rows)
        results = {
            "rows": progress.rows,
            "untrained": progress.untrained or [],
            "summary": metrics.summary(R, progress.untrained) if len(R) else {},
        }
        write_atomic(self.folder / RESULTS, json.dumps(metrics.json_ready(results)), durable=False)

    def _weights(self, agent, progress) -> None:
        self._weights_step, self._weights_at = agent.steps, time.monotonic()
        # serialised in memory, then written whole: a full disk is then an OSError (ENOSPC)
        # the run names, not a torch writer error half way through a file
        buf = io.BytesIO()
        torch.save(published_state(agent, progress.experience), buf)
        write_atomic(self.folder / WEIGHTS, buf.getvalue(), durable=False)

    def _view(self, agent, progress) -> None:
        self._view_step = agent.steps
        memory = agent.memory
        n = len(memory)
        tasks, counts = torch.unique(memory.task[:n], return_counts=True)
        steps = self.step_seconds
        view = {
            "status": self.status,
            "experience": progress.experience,
            "batch": progress.batch,
            "position": progress.position,
            "steps": agent.steps,
            "gradient_steps": agent.grad_steps,
            "online_accuracy": agent.online_accuracy,
            "loss": self.loss,
            "experiences_evaluated": len(progress.rows),
            "memory": {
                "size": n,
                "capacity": memory.capacity,
                "by_class": torch.bincount(memory.y[:n], minlength=self.cfg.n_classes).tolist(),
            },
            "memory_by_task": {
                "none" if int(t) == -1 else str(int(t)): int(c) for t, c in zip(tasks, counts)
            },
            "step_seconds": sum(steps) / len(steps) if steps else None,
            "published_step": agent.steps,
            "time": time.time(),
        }
        if self.clock is not None:  # real time: every batch answered, some learned
            self._view_revealed = self.clock.arrived
            view["online_accuracy"] = self.clock.online_accuracy(agent)
            view["real_time"] = {
                "batches_revealed": self.clock.arrived,
                "batches_learned": len(self.clock.learned),
                "learned_share": self.clock.learned_share,
                "seconds_between_batches": getattr(self.clock, "gap_seconds", None),
            }
        write_atomic(self.folder / VIEW, json.dumps(metrics.json_ready(view)), durable=False)

    def say(self, status: str, error: str | None = None) -> None:
        """A view with only a status (before the first step, after the last)."""
        path = self.folder / VIEW
        view = json.loads(path.read_text()) if path.exists() else {"position": 0}
        view["status"] = status
        if error is not None:
            view["error"] = error
        write_atomic(path, json.dumps(view), durable=False)


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (a kill -9 of the server)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):  # without it, the parent check still stops it
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="the learner of a served run (started by serve)")
    ap.add_argument("run_dir")
    ap.add_argument("--parent", type=int, required=True, help="the server's pid")
    ap.add_argument("--publish-every", type=int, default=50)
    args = ap.parse_args(argv)
    one_line_warnings("learner")
    _die_with_parent()
    run_dir = Path(args.run_dir)
    folder = run_dir / FOLDER
    cfg = RunConfig.load(folder / CONFIG)
    publisher = Publisher(folder, cfg, args.publish_every, args.parent)
    if publisher.parent_gone():
        return 1
    stop = threading.Event()
    log = IngestLog(run_dir)
    stream = LogStream(
        log,
        lambda: stop.is_set() or publisher.parent_gone(),
        poll=0.02,
        on_first_get=lambda: publisher.say("waiting"),  # the folder's checks have passed
        on_idle=publisher.idle,
    )

    def echo(message: str) -> None:
        print(f"learner: {message}", file=sys.stderr, flush=True)

    try:
        when_free(
            lambda: run(cfg, run_dir, live=stream, hooks=publisher, stop_event=stop, echo=echo),
            patience=15.0,  # the learner of a server killed a moment ago may still be dying
            should_stop=stop.is_set,
        )
    except KeyboardInterrupt:  # Ctrl-C twice in the server's terminal reaches us too
        echo("interrupted; the last checkpoint is intact")
        return 130
    except Exception as exc:
        if stop.is_set() and log.first_of(0) is None:  # stopped before anything arrived
            publisher.say("stopped")
            return 0
        message = f"{type(exc).__name__}: {exc}"
        try:  # on a full disk these may not fit: the exit status says it then
            write_atomic(folder / ERROR, str(exc), durable=False)
            write_atomic(folder / TRACEBACK, traceback.format_exc(), durable=False)
            publisher.say("failed", message)
        except OSError:
            pass
        echo(f"stopped: {message}")
        return DISK_FULL_EXIT if is_disk_full(exc) else 2
    finally:
        log.close()
    publisher.say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
