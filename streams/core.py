"""Experiences and streams: what to learn, in order. Knows data, nothing of models."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from streams.errors import StreamError

SCENARIOS = ("class", "task", "domain", "task-free")


@dataclass(frozen=True)
class Experience:
    """One step of a stream: train and test tensors plus what a learner may know about them.

    ``task_id`` is None on task-free streams, where a learner must not rely on boundaries.
    """

    id: int
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    task_id: int | None
    classes: tuple[int, ...]

    @property
    def n_train(self) -> int:
        return int(self.y_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.y_test.shape[0])

    def fingerprint(self) -> str:
        """A hash of the experience's arrays and task id: two experiences with the same
        fingerprint hold the same data, so a run folder can tell its stream from another."""
        h = hashlib.blake2b(digest_size=16)
        for t in (self.x_train, self.y_train, self.x_test, self.y_test):
            h.update(str((t.dtype, tuple(t.shape))).encode())
            h.update(t.contiguous().numpy().view(np.uint8).data)
        h.update(repr(self.task_id).encode())
        return h.hexdigest()


@dataclass
class Stream:
    """An ordered sequence of experiences, built lazily one at a time.

    Experiences are made on demand by ``build(i)`` so that iterating a permuted or rotated
    stream never holds more than one transformed copy of the data.
    """

    name: str
    scenario: str
    n_experiences: int
    n_classes: int
    input_shape: tuple[int, ...]
    build: Callable[[int], Experience] = field(repr=False)
    seed: int = 0
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise StreamError(f"unknown scenario {self.scenario!r}; expected one of {SCENARIOS}")

    def __len__(self) -> int:
        return self.n_experiences

    def __getitem__(self, i: int | slice) -> Experience | list[Experience]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.n_experiences))]
        if i < 0:
            i += self.n_experiences
        if not 0 <= i < self.n_experiences:
            raise IndexError(f"experience {i} out of range (stream has {self.n_experiences})")
        return self.build(i)

    def __iter__(self) -> Iterator[Experience]:
        for i in range(self.n_experiences):
            yield self.build(i)

    @property
    def task_aware(self) -> bool:
        """True when a learner is told the task id at train and test time."""
        return self.scenario == "task"

    def describe(self) -> dict:
        """A JSON-able summary: experiences, classes and sizes."""
        exps = []
        for e in self:
            exps.append(
                {
                    "id": e.id,
                    "task_id": e.task_id,
                    "classes": list(e.classes),
                    "n_train": e.n_train,
                    "n_test": e.n_test,
                }
            )
        return {
            "name": self.name,
            "scenario": self.scenario,
            "n_experiences": self.n_experiences,
            "n_classes": self.n_classes,
            "input_shape": list(self.input_shape),
            "seed": self.seed,
            "options": self.options,
            "experiences": exps,
        }
