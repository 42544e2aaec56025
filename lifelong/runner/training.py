"""``Training``: one process's stretch of a run, the loop over experiences and batches."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from lifelong import checkpoint, metrics
from lifelong.config import ConfigError, RunConfig
from lifelong.learner import budget
from lifelong.learner.agent import Agent
from lifelong.progress import Progress
from lifelong.run_folder import EventLog
from lifelong.runner.clock import StreamClock, compute_units
from lifelong.runner.label_delay import Arrival, PendingLabels
from lifelong.runner.results import publish
from lifelong.runner.signals import StopFlag, TestPause
from lifelong.runner.source import Source
from lifelong.runner.wall_clock import WallClock, clock_for_run
from lifelong.tensorboard_log import Scalars
from streams import Experience


class RunHooks:
    """What a caller (the HTTP service) hears from a run as it learns; the plain run
    hears nothing. Hooks run on the training thread, off the training clock."""

    def started(self, agent: Agent, progress: Progress) -> None:
        """The agent is built (and restored), before its first step here."""

    def clock_started(self, clock: StreamClock | None) -> None:
        """The run's stream clock (None when the stream waits and labels at once), before
        its first step: where the protocol's counts are read."""

    def stepped(self, agent: Agent, progress: Progress) -> None:
        """After every step."""

    def loss_read(self, step: int, loss: float) -> None:
        """Every tenth step's training loss, as read for the progress bar (reading it waits
        for the device, so it is not read every step)."""

    def experience_ended(self, agent: Agent, progress: Progress, summary: dict) -> None:
        """After an experience's end is evaluated, checkpointed and published."""


def evaluate(agent: Agent, tests: list[Experience]) -> list[float]:
    """Accuracy on each test set, to 6 decimals (a test set of 10,000 needs 4); NaN for an
    experience that came without one."""
    return [
        round(agent.accuracy(e.x_test, e.y_test, e.task_id), 6) if e.n_test else math.nan
        for e in tests
    ]


@dataclass
class Training:
    """One process's stretch of a run: the loop over experiences and batches, with its
    checkpoints, evaluations, event log and live results.

    A named stream ends when its experiences do (the run is then complete); a followed
    folder never does: it stops on a signal, ``--idle-timeout`` or ``--max-experiences``,
    checkpointed, and the same command resumes it and takes the files that came since."""

    cfg: RunConfig
    agent: Agent
    source: Source
    progress: Progress
    log: EventLog
    writer: checkpoint.Writer
    stop: StopFlag
    echo: Callable[[str], None]
    tb: Scalars | None = None
    hooks: RunHooks = field(default_factory=RunHooks)

    def run(self) -> bool:
        """Train until the stream ends or a stop; True if stopped by a signal."""
        p, agent = self.progress, self.agent
        self._last_save = time.monotonic()
        self._pause = TestPause()
        self._loss = float("nan")
        # a named stream's run from its start (not an older run's checkpoint made without one)
        named = self.source.live is None and not p.ends and p.position == 0
        timed = getattr(self.source.live, "timed", False)
        recorded = getattr(self.source.live, "recorded_times", False)  # a followed file's t
        self.clock = clock_for_run(self.cfg, p.clock, named, timed, recorded)
        self.pending = self._pending_labels()
        if p.untrained is None:
            p.untrained = evaluate(agent, self.source.test_sets())
            self.log.write({"type": "untrained", "accuracies": p.untrained})
        self._bar = tqdm(
            total=self.source.total,
            initial=p.position,
            unit="ex",
            disable=not self.cfg.progress,
            dynamic_ncols=True,
            desc="training",
        )
        self._started = time.perf_counter() - p.train_seconds
        self.hooks.clock_started(self.clock)
        self._untimed(self.hooks.started, agent, p)
        try:
            while (exp := self._untimed(self.source.get, p.experience)) is not None:
                if self._learn(exp):
                    return True
                self._end_experience(p.experience, exp.classes)
            if self.source.live is None:
                p.done = True
                self._save()
                self.writer.wait()  # on disk before the run returns
            elif self.stop.requested:
                self._stopped("stopped")
                return True
            else:
                self._stopped(f"stopped after {self.source.live.taken_here} new file(s)")
        except BaseException:
            with contextlib.suppress(Exception):  # the error in hand is the one to report
                self.writer.wait()
            raise
        finally:
            self._bar.close()
        return False

    def _learn(self, exp: Experience) -> bool:
        """The experience's batches from where the run is; True if a signal stopped it."""
        p, agent, cfg, i = self.progress, self.agent, self.cfg, self.progress.experience
        # a task id means something to the learner only on task-incremental streams; class-
        # and domain-incremental ones number every experience 0, which the memory would
        # record as a task (a served run, sent none, records none: the same run, the same rows)
        task = exp.task_id if agent.spec.task_aware else None
        if task is not None and exp.classes:  # a task's classes come with it, as Avalanche's
            # heads get them: its first batches are answered among them, not among all
            agent.masks.note(task, torch.as_tensor(exp.classes, device=agent.device))
        clock = self.clock
        # the batch behind each: near-future accuracy's, where it is there (not a live log)
        look = clock is not None and not isinstance(clock, WallClock) and cfg.near_future
        for (b, x, y, *logged), after in _with_next(self._batches_of(exp), look):
            arrival = Arrival(i, b, clock.arrived if clock else -1, p.position, x, y, task)
            p.position += len(y)
            p.batch = b + 1
            self._bar.update(len(y))
            if clock is not None:
                ready = self._on_the_clock(clock, arrival, after, *logged)
            else:
                ready = arrival
            if ready is None:  # answered only: the learner was busy, or its labels are late
                continue
            before = started = 0.0
            if clock is not None:
                before, started = compute_units(agent), time.perf_counter()
                room = clock.room()  # its updates, sized to the time it has
                if cfg.real_time and cfg.fit_compute and room is not None:
                    budget.apply(agent, *budget.plan(agent, len(ready.y), room))
            self._loss = agent.observe(
                ready.x,
                ready.y,
                task_id=ready.task,
                experience=ready.experience,
                position=ready.position,
                checked=True,
            )
            if clock is not None:
                seconds = time.perf_counter() - started
                clock.took(compute_units(agent) - before, ready.number, seconds)
            p.train_seconds = time.perf_counter() - self._started
            if agent.steps % 10 == 0:  # reading the loss waits for the device: not every step
                loss = float(self._loss)
                self._bar.set_postfix(exp=i, loss=f"{loss:.3f}", refresh=False)
                if self.tb is not None:
                    self.tb.loss(agent.steps, loss)
                self._untimed(self.hooks.loss_read, agent.steps, loss)
            if cfg.eval_every and agent.steps % cfg.eval_every == 0:
                self._curve_point(i)
            self._untimed(self.hooks.stepped, agent, p)
            self._pause.at(agent.steps, self.stop, self.writer)
            if self.stop.requested:
                self._stopped("stopped")
                return True
            if self._save_due():
                self._save()
        if self.stop.requested:  # a live stream stopped waiting for its next batch
            self._stopped("stopped")
            return True
        return False

    def _on_the_clock(
        self, clock: StreamClock, arrival: Arrival, after, logged: float | None = None
    ) -> Arrival | None:
        """The batch to learn now that ``arrival`` came (``after``: the batch behind it, or
        None; ``logged``: when a live log took it): predict the one behind it; with late
        labels, answer the arrival and learn the batch whose labels come now; on a stream
        that does not wait, learn only when free (a busy learner answers the arrival, and
        drops labels that come meanwhile)."""
        agent, task = self.agent, arrival.task
        free = clock.arrive(logged)
        if after is not None:
            self._untimed(clock.look_ahead, agent, after[1], after[2], task)
        if self.pending is None:
            if not free:
                self._untimed(clock.answer, agent, arrival.x, arrival.y, task)
            return arrival if free else None
        self._untimed(clock.answer, agent, arrival.x, arrival.y, task)
        ready = self.pending.push(arrival)
        return ready if free else None

    def _pending_labels(self) -> PendingLabels | None:
        """The batches waiting for their labels (as checkpointed), or None without delay."""
        delay = self.cfg.label_delay
        if not delay:
            return None
        if self.source.live is not None:
            raise ConfigError(
                "label_delay needs a named stream: a live stream's batches are not kept to "
                "learn when their labels come"
            )
        return PendingLabels.restore(delay, self.progress.pending or [], self._fetch)

    def _fetch(self, experience: int, batch: int):
        """Batch ``batch`` of an experience of the named stream, as it arrived."""
        exp, size = self.source.get(experience), self.cfg.batch_size
        order = learning_order(self.cfg, experience, exp.n_train)
        idx = order[batch * size : (batch + 1) * size]
        device = self.agent.device
        task = exp.task_id if self.agent.spec.task_aware else None
        return exp.x_train[idx].to(device), exp.y_train[idx].to(device), task

    def _batches_of(self, exp: Experience):
        """(b, x, y) from batch ``progress.batch`` on: a live stream's in arrival order, a
        whole experience's checked once (0.1 ms against 1.5 a batch) and, unless ``shuffle``
        is off, in a seeded random order; a timed followed file's in its order, each batch
        with the second it arrived (its last example's ``t``)."""
        live, cfg, i = self.source.live, self.cfg, self.progress.experience
        if live is not None and hasattr(live, "batches"):
            yield from self._untimed_iter(live.batches(exp, self.progress.batch, cfg.batch_size))
            return
        if exp.n_train:
            self.agent.check_data(exp.x_train, exp.y_train, i, 0)
        times = getattr(live, "times", {}).get(i) if isinstance(self.clock, WallClock) else None
        order = learning_order(cfg, i, exp.n_train) if times is None else torch.arange(exp.n_train)
        batches = _batches(exp, order, cfg.batch_size, self.progress.batch, self.agent.device)
        if times is None:
            yield from batches
            return
        for b, x, y in batches:  # in the order they came, each when its last example did
            yield b, x, y, float(times[min((b + 1) * cfg.batch_size, exp.n_train) - 1])

    def _untimed_iter(self, items):
        """Each item of ``items`` with the wait for it off the training clock."""
        while True:
            t = time.perf_counter()
            try:
                item = next(items)
            except StopIteration:
                return
            finally:
                self._started += time.perf_counter() - t
            yield item

    def _curve_point(self, i: int) -> None:
        row = self._untimed(evaluate, self.agent, self.source.test_sets())
        p = self.progress
        p.lowest = metrics.lowest_since_learned(p.lowest, i, row)
        self.log.write(
            {
                "type": "curve",
                "step": self.agent.steps,
                "experience": i,
                "position": self.progress.position,
                "accuracies": row,
            }
        )
        if self.tb is not None:
            self.tb.accuracies(self.agent.steps, row)

    def _end_experience(self, i: int, classes) -> None:
        p, agent = self.progress, self.agent
        renew, boundary = True, budget.boundary_cost(agent, i)
        if self.clock is not None and self.cfg.real_time and self.cfg.fit_compute:
            renew = budget.refreshes(boundary, self.clock.idle())  # not if it costs batches
        agent.end_experience(i, renew)
        if self.clock is not None and renew:  # its end-of-experience learning takes time
            self.clock.busy(boundary)
        p.train_seconds = time.perf_counter() - self._started
        row = self._untimed(evaluate, agent, self.source.test_sets())
        p.rows.append(row)
        p.lowest = metrics.lowest_since_learned(p.lowest, i, row)
        end = {
            "type": "experience_end",
            "experience": i,
            "classes": [int(c) for c in classes],  # what it held: the report's legend says
            "step": agent.steps,
            "position": p.position,
            "accuracies": row,
            "loss": float(self._loss),
            "seconds": p.train_seconds,
            "online_correct": agent.online_correct,  # cumulative: per experience by difference
            "online_seen": agent.online_seen,
        }
        if self.clock is not None:  # which of its batches the learner had the time to learn
            end.update(self.clock.record(p.ends))
        self.log.write(end)
        p.ends.append(end)
        p.experience, p.batch = i + 1, 0
        self._save()
        _, summary = self._untimed(publish, self.cfg, self.writer.run_dir, p, agent, "running")
        if self.tb is not None:
            self.tb.experience_end(agent.steps, row, summary)
        self._untimed(self.hooks.experience_ended, agent, p, summary)

    def _untimed(self, work, *args):
        """Run ``work(*args)`` off the training clock (evaluation, waiting for files,
        writing live results): throughput counts training alone."""
        t = time.perf_counter()
        try:
            return work(*args)
        finally:
            self._started += time.perf_counter() - t

    def _save(self) -> None:
        p = self.progress
        p.events = self.log.count
        if self.source.ledger is not None:
            p.files = self.source.ledger
        p.log = self.source.log_identity
        p.clock = self.clock.to_dict() if self.clock is not None else None
        p.pending = self.pending.to_list() if self.pending is not None else None
        self.log.sync()
        self.writer.save(self.agent.state_dict(), p.to_dict(), self.agent.store)
        self._last_save = time.monotonic()

    def _save_due(self) -> bool:
        every, seconds = self.cfg.checkpoint_every, self.cfg.checkpoint_seconds
        return bool(every and self.agent.steps % every == 0) or bool(
            seconds and time.monotonic() - self._last_save >= seconds
        )

    def _stopped(self, why: str) -> None:
        self._save()
        self.writer.wait()
        self._bar.close()
        where = self.writer.run_dir / checkpoint.NAME
        self.echo(f"{why}; checkpoint written to {where} ({RESUME_HINT})")


RESUME_HINT = "run the same command to resume"


def learning_order(cfg: RunConfig, experience: int, n: int) -> torch.Tensor:
    """The order an experience's n examples are learned in: seeded random, or as given."""
    if not cfg.shuffle:
        return torch.arange(n)
    seed = torch.Generator().manual_seed(cfg.seed * 100_003 + experience)
    return torch.randperm(n, generator=seed)


_CHUNK = 64  # batches gathered at once: one gather and then views, not a gather per batch


def _batches(exp: Experience, order: torch.Tensor, size: int, start: int, device=None):
    """(b, x, y) for batches ``start``, ``start + 1``, ... of the experience in this order."""
    n = math.ceil(exp.n_train / size)
    for first in range(start, n, _CHUNK):
        idx = order[first * size : (first + _CHUNK) * size]
        xs, ys = exp.x_train[idx], exp.y_train[idx]
        if device is not None:  # one copy to the learner's device for the chunk
            xs, ys = xs.to(device, non_blocking=True), ys.to(device, non_blocking=True)
        for b in range(first, min(first + _CHUNK, n)):
            k = (b - first) * size
            yield b, xs[k : k + size], ys[k : k + size]


def _with_next(items, look: bool):
    """Each item with the one after it (None for the last, or when not ``look``ing: a live
    stream's next batch is not there yet)."""
    if not look:
        yield from ((item, None) for item in items)
        return
    previous = sentinel = object()
    for item in items:
        if previous is not sentinel:
            yield previous, item
        previous = item
    if previous is not sentinel:
        yield previous, None
