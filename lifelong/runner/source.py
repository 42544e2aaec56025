"""Where a run's experiences come from: a named stream, a followed folder or a live stream."""

from __future__ import annotations

import hashlib

from lifelong.config import ConfigError, RunConfig
from lifelong.follow import FolderStream
from lifelong.learner.agent import StreamSpec
from lifelong.runner.signals import StopFlag
from streams import Experience, Stream, get_stream


class Source:
    """A named stream (every test set known from the start) or a live one whose experiences
    arrive over time: a followed folder, or the ``live`` stream a caller hands in (the HTTP
    service's ingest log). A live stream has ``get(i)``, ``known()``, ``ledger``,
    ``taken_here`` and ``resume_from(progress)``; one with ``batches(exp, start, size)``
    gives its own batches, in the order they arrived."""

    def __init__(
        self,
        cfg: RunConfig,
        stop: StopFlag,
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
                timed=cfg.real_time and cfg.wall_clock,
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

    @property
    def log_identity(self) -> dict | None:
        """A live stream's log that a checkpoint must name (the service's ingest log)."""
        return getattr(self.live, "identity", None)

    def get(self, i: int) -> Experience | None:
        if self.live is not None:
            return self.live.get(i)
        return self.experiences[i] if i < len(self.experiences) else None

    def test_sets(self) -> list[Experience]:
        return self.live.known() if self.live is not None else self.experiences
