"""``StreamSpec``: what the learner must know of a stream before it sees any data."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StreamSpec:
    """What the agent must know of a stream before it sees any data: the shape of one
    example (``(1, 28, 28)``, ``(3, 32, 32)``, ``(64,)``...), the number of classes, whether
    task ids are given at train and test time, and the scenario (ER-ACE is off on
    domain-incremental streams, where new classes do not appear)."""

    input_shape: tuple[int, ...]
    n_classes: int
    task_aware: bool  # task ids given at train and test time (task-incremental)
    scenario: str = "class"  # class | task | domain | task-free
