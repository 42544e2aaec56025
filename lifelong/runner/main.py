"""``run``: drive an agent through a stream inside a run folder, resumably.

A run folder holds ``config.toml``, ``metrics.jsonl`` (one JSON event a line),
``accuracy_matrix.csv``, ``summary.json``, ``checkpoint/`` and ``memory/`` (the store), and
``report/``. Running again on the same folder resumes from the last checkpoint; a folder
made with a different config is refused.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
from dataclasses import replace
from pathlib import Path

import torch

from lifelong import checkpoint
from lifelong.config import ConfigError, RunConfig
from lifelong.errors import DiskFull
from lifelong.learner.agent import Agent
from lifelong.learner.device import learner_device
from lifelong.learner.models import model_kind
from lifelong.progress import Progress
from lifelong.run_folder import EventLog, FolderLock
from lifelong.runner.identity import check_identity
from lifelong.runner.results import RunResult, completed, finish
from lifelong.runner.signals import StopFlag
from lifelong.runner.source import Source
from lifelong.runner.training import RunHooks, Training
from lifelong.tensorboard_log import Scalars
from stores import EpisodicStore
from stores.files import is_disk_full
from streams import Stream


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

    ``live`` learns a stream whose experiences arrive while it runs (see ``Source``), until
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
    learner_device(cfg.device, cfg.bf16)  # an absent GPU: one line, before the folder is touched
    run_dir = Path(run_dir)
    with (
        StopFlag(stop_event) as stop,
        FolderLock(run_dir) as lock,
        contextlib.ExitStack() as scope,
    ):
        try:
            source = Source(cfg, stop, follow_options or {}, stream, echo, live)
        except BaseException:
            if lock.created and lock.holds_only_itself():  # leave no folder behind a typo
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        saved = checkpoint.load(run_dir, warn=echo)
        check_identity(cfg, source.fingerprint, run_dir, saved)

        def load_agent() -> Agent:  # the spec of a live stream is known once it starts
            return trained_agent(cfg, run_dir, source.spec, model)

        if saved is not None and (done := completed(run_dir, saved.progress)) is not None:
            echo(
                f"{run_dir} is already complete: its results as they were written (train "
                "again in another --out, or delete the folder)"
            )
            done.load_agent = load_agent
            return done
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
            result = finish(cfg, run_dir, progress, agent, interrupted)
            result.stop_signal = int(stop.signum)
            result.load_agent = load_agent
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


def trained_agent(cfg: RunConfig, run_dir: Path, spec, model=None) -> Agent:
    """The agent of a run folder's last checkpoint, over a read-only view of its store: to
    predict and key examples with, and to read its memory (a run goes on with ``run``)."""
    saved = checkpoint.load(run_dir, warn=lambda message: None)
    if saved is None:
        raise ConfigError(f"{run_dir} has no checkpoint yet: nothing trained to load")
    store = EpisodicStore.open(run_dir / "memory", readonly=True)
    try:
        agent = Agent(cfg.learner(), spec, store, model)
        agent.load_state_dict(saved.state)
    except BaseException:
        store.close()
        raise
    return agent


def _close(store: EpisodicStore) -> None:
    """Close the store; a failure to save its index file (a full disk) is not an error: the
    database is committed, and the next open rebuilds the index from it."""
    try:
        store.close()
    except Exception as exc:
        if not is_disk_full(exc):
            raise
