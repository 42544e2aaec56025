"""``run``: drive an agent through a stream inside a run folder, resumably.

A run folder holds ``config.toml``, ``metrics.jsonl`` (one JSON event a line),
``accuracy_matrix.csv``, ``summary.json``, ``checkpoint/`` and ``memory/`` (the store), and
``report/``. Running again on the same folder resumes from the last checkpoint; a folder
made with a different config is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lifelong import checkpoint, metrics
from lifelong.agent import Agent, StreamSpec
from lifelong.config import ConfigError, RunConfig
from lifelong.errors import DiskFull
from lifelong.follow import FolderStream
from lifelong.models import model_kind
from lifelong.progress import Progress
from lifelong.run_folder import EventLog, FolderLock
from lifelong.tensorboard_log import Scalars
from stores import EpisodicStore
from stores.files import is_disk_full, write_atomic
from streams import Experience, Stream, get_stream


@dataclass
class RunResult:
    run_dir: Path
    matrix: np.ndarray  # rows: after experience i; columns: test set j (NaN: not known yet)
    untrained: list[float]
    summary: dict
    interrupted: bool = False
    report: dict = field(default_factory=dict)


class _StopFlag:
    """Ctrl-C / SIGTERM, or the caller's ``stop_event``, ask the loop to stop after the
    current step and checkpoint; a signal sets the event too, so a live stream waiting for
    data (the served learner's) hears it."""

    def __init__(self, event: threading.Event | None = None) -> None:
        self._requested = False
        self._event = event
        self._old: dict = {}

    @property
    def requested(self) -> bool:
        return self._requested or (self._event is not None and self._event.is_set())

    def __enter__(self) -> _StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self._requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self._requested = True
        if self._event is not None:  # a live stream waiting for data hears it too
            self._event.set()

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def _torch_threads(cfg: RunConfig, input_shape: tuple[int, ...]):
    """The run's torch thread count (``cfg.threads``, or by model), restored afterwards."""
    before = torch.get_num_threads()
    mlp = model_kind(cfg.model, input_shape) == "mlp"
    torch.set_num_threads(cfg.threads or (1 if mlp else before))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _check_identity(cfg: RunConfig, stream_print: str | None, run_dir: Path, saved) -> None:
    """Refuse a folder made by another config or trained on other data; write config.toml.

    The checkpoint carries the config and stream fingerprint it was made with and is the
    authority (config.toml may have been deleted or edited); a folder never checkpointed
    is checked against its config.toml."""
    saved_path = run_dir / "config.toml"
    identity = saved.identity if saved is not None else None
    if identity is not None:
        try:
            made_with = RunConfig.from_dict(identity["config"])
        except ConfigError as exc:
            raise ConfigError(
                f"{run_dir}'s checkpoint holds a config this lifelong cannot read ({exc})"
            ) from None
    elif saved_path.exists():
        made_with = RunConfig.load(saved_path)
    else:
        made_with = None
    if made_with is not None:
        diffs = made_with.differences(cfg)
        if diffs:
            lines = ", ".join(f"{k}: {a!r} (folder) vs {b!r} (now)" for k, (a, b) in diffs.items())
            raise ConfigError(
                f"run folder {run_dir} was made with a different config ({lines}); "
                "use another --out, or delete the folder to start over"
            )
    if identity is not None and identity.get("stream") != stream_print and stream_print:
        raise ConfigError(
            f"run folder {run_dir} was trained on other data than this stream's "
            f"{cfg.stream!r} (data fingerprint {identity.get('stream')} in the checkpoint, "
            f"{stream_print} now); use another --out, or delete the folder to start over"
        )
    write_atomic(saved_path, cfg.dumps())


class RunHooks:
    """What a caller (the HTTP service) hears from a run as it learns; the plain run
    hears nothing. Hooks run on the training thread, off the training clock."""

    def started(self, agent: Agent, progress: Progress) -> None:
        """The agent is built (and restored), before its first step here."""

    def stepped(self, agent: Agent, progress: Progress) -> None:
        """After every step."""

    def experience_ended(self, agent: Agent, progress: Progress, summary: dict) -> None:
        """After an experience's end is evaluated, checkpointed and published."""


class _Source:
    """A named stream (every test set known from the start) or a live one whose experiences
    arrive over time: a followed folder, or the ``live`` stream a caller hands in (the HTTP
    service's ingest log). A live stream has ``get(i)``, ``known()``, ``ledger``,
    ``taken_here`` and ``resume_from(progress)``; one with ``batches(exp, start, size)``
    gives its own batches, in the order they arrived."""

    def __init__(
        self,
        cfg: RunConfig,
        stop: _StopFlag,
        follow_options: dict,
        stream: Stream | None,
        echo=print,
        live=None,
    ) -> None:
        self.cfg = cfg
        if live is not None:
            self.live = live
            self.total = None
            self.fingerprint = None
        elif cfg.follow:
            self.live = FolderStream(
                cfg.follow,
                cfg.n_classes,
                should_stop=lambda: stop.requested,
                echo=echo,
                **follow_options,
            )
            self.total = None
            self.fingerprint = None  # files arrive over time: the ledger identifies them
        else:
            self.live = None
            if stream is None:
                stream = get_stream(cfg.stream, experiences=cfg.experiences or None, seed=cfg.seed)
            self.experiences = list(stream)
            self.spec = StreamSpec(
                stream.input_shape, stream.n_classes, stream.task_aware, stream.scenario
            )
            self.total = sum(e.n_train for e in self.experiences)
            h = hashlib.blake2b(digest_size=16)
            for e in self.experiences:
                h.update(e.fingerprint().encode())
            self.fingerprint = h.hexdigest()

    def start(self, progress: dict | None) -> None:
        """Follow mode: adopt the checkpoint's ledger of files taken, then wait for the first
        file (its shape sets the model's input)."""
        if self.live is None:
            return
        if progress is not None:
            self.live.resume_from(progress)
        first = self.live.get(0)
        if first is None:
            raise ConfigError(f"nothing arrived to learn from {self.live.name}")
        self.spec = StreamSpec(tuple(first.x_train.shape[1:]), self.cfg.n_classes, False)

    @property
    def ledger(self) -> list[dict] | None:
        ledger = self.live.ledger if self.live is not None else None
        return list(ledger) if ledger is not None else None

    def get(self, i: int) -> Experience | None:
        if self.live is not None:
            return self.live.get(i)
        return self.experiences[i] if i < len(self.experiences) else None

    def test_sets(self) -> list[Experience]:
        return self.live.known() if self.live is not None else self.experiences


def evaluate(agent: Agent, tests: list[Experience]) -> list[float]:
    """Accuracy on each test set, to 6 decimals (a test set of 10,000 needs 4); NaN for an
    experience that came without one."""
    return [
        round(agent.accuracy(e.x_test, e.y_test, e.task_id), 6) if e.n_test else math.nan
        for e in tests
    ]


class _TestPause:
    """Test-only: ``LIFELONG_TEST_PAUSE=STEP:FILE`` makes the run finish writing any
    checkpoint under way, touch FILE after step STEP and wait there (until SIGINT/SIGTERM or
    SIGKILL), so tests stop a run at a point they choose, with a known last checkpoint,
    instead of after a wall-clock delay that a fast machine outruns."""

    def __init__(self) -> None:
        step, _, flag = os.environ.get("LIFELONG_TEST_PAUSE", "").partition(":")
        self.step, self.flag = (int(step), Path(flag)) if flag else (None, None)

    def at(self, steps: int, stop: _StopFlag, writer: checkpoint.Writer) -> None:
        if steps != self.step:
            return
        writer.wait()
        self.flag.touch()
        while not stop.requested:
            time.sleep(0.01)


def _disk_full(run_dir: Path, last: dict | None) -> DiskFull:
    where = (
        f"the last checkpoint (experience {last['experience']}, batch {last['batch']}) is intact"
        if last is not None
        else "nothing was checkpointed yet"
    )
    return DiskFull(
        f"no space left on the disk of {run_dir}; {where}: free some space and run the same "
        "command to resume"
    )


def run(
    cfg: RunConfig,
    run_dir: str | Path,
    *,
    stream: Stream | None = None,
    model: torch.nn.Module | None = None,
    follow_options: dict | None = None,
    live=None,
    hooks: RunHooks | None = None,
    stop_event: threading.Event | None = None,
    echo=print,
) -> RunResult:
    """Train ``cfg``'s agent through its stream in ``run_dir``, resuming if it can.

    ``stream`` runs any Stream object (e.g. from ``streams.from_arrays``) instead of the
    named ``cfg.stream``; its name is recorded in the run's config. ``model`` trains your
    own ``nn.Module`` (inputs to logits; recorded as ``custom:ClassName``, and a resume must
    pass it again). The folder is locked for the whole run; a folder made with another
    config or other stream data is refused.

    ``live`` learns a stream whose experiences arrive while it runs (see ``_Source``), until
    ``stop_event`` is set; ``hooks`` hear of each step and experience end.
    """
    cfg = replace(cfg, stream=stream.name) if stream is not None else replace(cfg)
    if model is not None:
        cfg.model = f"custom:{type(model).__qualname__}"
    elif cfg.model.startswith("custom:"):
        raise ConfigError(
            f"this run's model ({cfg.model}) was an nn.Module passed in Python: resume it "
            "with run(cfg, run_dir, model=...)"
        )
    cfg.validate()
    run_dir = Path(run_dir)
    with (
        _StopFlag(stop_event) as stop,
        FolderLock(run_dir) as lock,
        contextlib.ExitStack() as scope,
    ):
        try:
            source = _Source(cfg, stop, follow_options or {}, stream, echo, live)
        except BaseException:
            if lock.created and lock.holds_only_itself():  # leave no folder behind a typo
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        saved = checkpoint.load(run_dir, warn=echo)
        _check_identity(cfg, source.fingerprint, run_dir, saved)
        source.start(saved.progress if saved is not None else None)
        scope.enter_context(_torch_threads(cfg, source.spec.input_shape))
        memory_dir = run_dir / "memory"
        if saved is not None:
            EpisodicStore.restore(memory_dir, saved.snapshot)
            progress = Progress.from_dict(saved.progress, run_dir / "metrics.jsonl")
        else:  # never checkpointed: whatever a killed first attempt left is discarded
            shutil.rmtree(memory_dir, ignore_errors=True)
            progress = Progress()
        writer = checkpoint.Writer(run_dir, {"config": cfg.to_dict(), "stream": source.fingerprint})
        writer.last_progress = saved.progress if saved is not None else None
        store = Agent.memory_for(cfg.learner(), source.spec, memory_dir, model)
        log = tb = None
        try:
            agent = Agent(cfg.learner(), source.spec, store, model)
            if saved is not None:
                agent.load_state_dict(saved.state)
            log = EventLog(
                run_dir / "metrics.jsonl", progress.events, progress.vouched_events, echo
            )
            if saved is not None and not progress.done:
                echo(
                    f"resuming {run_dir} at experience {progress.experience}, "
                    f"batch {progress.batch} (step {agent.steps})"
                )
            interrupted = False
            if not progress.done:
                tb = Scalars(run_dir, agent.steps) if cfg.tensorboard else None
                training = Training(
                    cfg, agent, source, progress, log, writer, stop, echo, tb, hooks or RunHooks()
                )
                interrupted = training.run()
            result = _finish(cfg, run_dir, progress, agent, interrupted)
        except BaseException as exc:
            if is_disk_full(exc):
                raise _disk_full(run_dir, writer.last_progress) from None
            raise
        finally:
            if log is not None:
                log.close()
            if tb is not None:
                tb.close()
            _close(store)
    return result


def _close(store: EpisodicStore) -> None:
    """Close the store; a failure to save its index file (a full disk) is not an error: the
    database is committed, and the next open rebuilds the index from it."""
    try:
        store.close()
    except Exception as exc:
        if not is_disk_full(exc):
            raise


@dataclass
class Training:
    """One process's stretch of a run: the loop over experiences and batches, with its
    checkpoints, evaluations, event log and live results.

    A named stream ends when its experiences do (the run is then complete); a followed
    folder never does: it stops on a signal, ``--idle-timeout`` or ``--max-experiences``,
    checkpointed, and the same command resumes it and takes the files that came since."""

    cfg: RunConfig
    agent: Agent
    source: _Source
    progress: Progress
    log: EventLog
    writer: checkpoint.Writer
    stop: _StopFlag
    echo: Callable[[str], None]
    tb: Scalars | None = None
    hooks: RunHooks = field(default_factory=RunHooks)

    def run(self) -> bool:
        """Train until the stream ends or a stop; True if stopped by a signal."""
        p, agent = self.progress, self.agent
        self._last_save = time.monotonic()
        self._pause = _TestPause()
        self._loss = float("nan")
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
        self._untimed(self.hooks.started, agent, p)
        try:
            while (exp := self._untimed(self.source.get, p.experience)) is not None:
                if self._learn(exp):
                    return True
                self._end_experience(p.experience)
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
        for b, x, y in self._batches_of(exp):
            self._loss = agent.observe(
                x, y, task_id=exp.task_id, experience=i, position=p.position, checked=True
            )
            p.position += len(y)
            p.batch = b + 1
            p.train_seconds = time.perf_counter() - self._started
            self._bar.update(len(y))
            if agent.steps % 10 == 0:
                self._bar.set_postfix(exp=i, loss=f"{self._loss:.3f}", refresh=False)
                if self.tb is not None:
                    self.tb.loss(agent.steps, self._loss)
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

    def _batches_of(self, exp: Experience):
        """(b, x, y) from batch ``progress.batch`` on: a live stream's in arrival order, a
        whole experience's checked once (0.1 ms against 1.5 a batch) and, unless ``shuffle``
        is off, in a seeded random order."""
        live, cfg, i = self.source.live, self.cfg, self.progress.experience
        if live is not None and hasattr(live, "batches"):
            yield from self._untimed_iter(live.batches(exp, self.progress.batch, cfg.batch_size))
            return
        if exp.n_train:
            self.agent.check_data(exp.x_train, exp.y_train, i, 0)
        yield from _batches(
            exp, learning_order(cfg, i, exp.n_train), cfg.batch_size, self.progress.batch
        )

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

    def _end_experience(self, i: int) -> None:
        p, agent = self.progress, self.agent
        agent.end_experience(i)
        p.train_seconds = time.perf_counter() - self._started
        row = self._untimed(evaluate, agent, self.source.test_sets())
        p.rows.append(row)
        end = {
            "type": "experience_end",
            "experience": i,
            "step": agent.steps,
            "position": p.position,
            "accuracies": row,
            "loss": self._loss,
            "seconds": p.train_seconds,
            "online_correct": agent.online_correct,  # cumulative: per experience by difference
            "online_seen": agent.online_seen,
        }
        self.log.write(end)
        p.ends.append(end)
        p.experience, p.batch = i + 1, 0
        self._save()
        _, summary = self._untimed(_publish, self.cfg, self.writer.run_dir, p, agent, "running")
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


def _batches(exp: Experience, order: torch.Tensor, size: int, start: int):
    """(b, x, y) for batches ``start``, ``start + 1``, ... of the experience in this order."""
    n = math.ceil(exp.n_train / size)
    for first in range(start, n, _CHUNK):
        idx = order[first * size : (first + _CHUNK) * size]
        xs, ys = exp.x_train[idx], exp.y_train[idx]
        for b in range(first, min(first + _CHUNK, n)):
            k = (b - first) * size
            yield b, xs[k : k + size], ys[k : k + size]


def _publish(cfg, run_dir, progress, agent, status: str) -> tuple[np.ndarray, dict]:
    """Write accuracy_matrix.csv and summary.json as of now, each atomically: at every
    experience end (``status`` "running") and when the run stops, so a live run folder can
    be read, and reported on, at any moment."""
    R = metrics.matrix_from_rows(progress.rows)
    summary: dict = {"status": status}
    if len(R):
        summary.update(metrics.summary(R, progress.untrained))
    seconds = progress.train_seconds
    summary.update(
        {
            "examples": agent.examples,
            "gradient_steps": agent.grad_steps,
            "gradient_steps_per_example": agent.grad_steps / max(agent.examples, 1),
            "flops_per_example": agent.flops_per_example,
            "online_accuracy": agent.online_accuracy,
            "train_seconds": seconds,
            "samples_per_second": agent.examples / seconds if seconds else None,
            "complete": progress.done,
            "memories": len(agent.memory),
            # times the weight average fell behind the live weights and started again
            "average_restarts": agent.average.restarts if agent.average is not None else None,
        }
    )
    header = ["after_experience"] + [f"exp_{j}" for j in range(R.shape[1] if len(R) else 0)]
    lines = [",".join(header)] + [
        ",".join([str(i)] + ["" if np.isnan(v) else f"{v:.6f}" for v in row])
        for i, row in enumerate(R)
    ]
    write_atomic(run_dir / "accuracy_matrix.csv", "\n".join(lines) + "\n", durable=False)
    record = {
        "summary": summary,
        "matrix": R.tolist(),
        "untrained": progress.untrained,
        "config": cfg.to_dict(),
    }
    write_atomic(
        run_dir / "summary.json", json.dumps(metrics.json_ready(record), indent=2), durable=False
    )
    return R, summary


def _finish(cfg, run_dir, progress, agent, interrupted) -> RunResult:
    from lifelong import report

    status = "complete" if progress.done else "stopped"
    R, summary = _publish(cfg, run_dir, progress, agent, status)
    paths = report.write_report(run_dir) if len(R) else {}
    return RunResult(run_dir, R, progress.untrained, summary, interrupted, paths)


def format_summary(result: RunResult) -> str:
    """The one-screen summary printed at the end of ``lifelong run``."""
    R, s = result.matrix, result.summary
    out = []
    if len(R):
        out.append("accuracy matrix (row: after experience i, column: test set of experience j)")
        out.append("      " + " ".join(f"{j:>6}" for j in range(R.shape[1])))
        for i, row in enumerate(R):
            out.append(f"{i:>5} " + " ".join("     -" if np.isnan(v) else f"{v:6.3f}" for v in row))
        out.append("")
        out.append(f"average accuracy           {s['average_accuracy']:.4f}")
        out.append(f"forgetting (Chaudhry 2018) {s['forgetting_chaudhry2018']:.4f}")
        out.append(f"BWT (Lopez-Paz 2017)       {s['bwt_lopezpaz2017']:+.4f}")
        if s.get("fwt_lopezpaz2017") is not None:
            out.append(f"FWT (Lopez-Paz 2017)       {s['fwt_lopezpaz2017']:+.4f}")
    if s.get("online_accuracy") is not None:
        online = s["online_accuracy"]
        out.append(f"online accuracy            {online:.4f} (each batch, before learning it)")
    out.append(f"gradient steps per example {s['gradient_steps_per_example']:.2f}")
    if s.get("flops_per_example") is not None:
        out.append(f"training FLOPs per example {s['flops_per_example'] / 1e6:.1f} M")
    if s.get("samples_per_second"):
        out.append(
            f"training throughput        {s['samples_per_second']:.0f} examples/s "
            f"({s['train_seconds']:.1f} s)"
        )
    out.append(f"results in {result.run_dir}  (summary.json, accuracy_matrix.csv, metrics.jsonl)")
    if "forgetting_curves" in result.report:
        out.append(f"forgetting curves: {result.report['forgetting_curves']}")
    if "html" in result.report:
        out.append(f"report: {result.report['html']}")
    return "\n".join(out)
