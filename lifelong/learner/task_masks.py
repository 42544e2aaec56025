"""``TaskMasks``: which classes each task of a task-incremental stream allows, on the
learner's device.

A table with a row of allowed classes per known task and, last, a row allowing every class
(an unknown task's), so a batch's masks are one index. A task gains its classes as batches
arrive (an in-place write, no host read); the table grows only when a new task id arrives,
which the host knows without asking the device.
"""

from __future__ import annotations

import torch


class TaskMasks:
    def __init__(self, n_classes: int, device: torch.device) -> None:
        self.n_classes, self.device = n_classes, device
        self.table = torch.ones(1, n_classes, dtype=torch.bool, device=device)

    @property
    def known(self) -> int:
        """How many task ids the table has rows for (0..known-1)."""
        return len(self.table) - 1

    @property
    def classes(self) -> torch.Tensor:
        """(tasks, C): the classes seen with each task."""
        return self.table[:-1]

    def note(self, task_id: int, y: torch.Tensor) -> None:
        """Task ``task_id`` has these labels."""
        if task_id >= self.known:
            grow = torch.zeros(
                task_id + 1 - self.known, self.n_classes, dtype=torch.bool, device=self.device
            )
            self.table = torch.cat([self.table[:-1], grow, self.table[-1:]])
        self.table[task_id].index_fill_(0, y, True)

    def row(self, task_id: int) -> torch.Tensor | None:
        """(C,) the classes a known task allows; None (every class) for a task not seen yet.
        A view: it changes as the task gains classes."""
        return self.table[task_id] if task_id < self.known else None

    def rows(self, tasks: torch.Tensor) -> torch.Tensor:
        """(n, C) the classes each of these tasks allows (every class for unknown ones)."""
        known = self.known
        return self.table[torch.where((tasks >= 0) & (tasks < known), tasks, known)]

    def of_rows(
        self, incoming: torch.Tensor | None, n_in: int, memories: torch.Tensor | None, n_mem: int
    ) -> torch.Tensor:
        """(n_in + n_mem, C): each row of an update under its own task's classes (every
        class where a row's mask is None)."""
        every = self.table[-1]
        rows = [(every if incoming is None else incoming).expand(n_in, -1)]
        if n_mem:
            rows.append(memories if memories is not None else every.expand(n_mem, -1))
        return torch.cat(rows)

    def state_dict(self) -> torch.Tensor:
        return self.classes.cpu()

    def load_state_dict(self, classes: torch.Tensor) -> None:
        every = torch.ones(1, self.n_classes, dtype=torch.bool)
        self.table = torch.cat([classes.to(torch.bool), every]).to(self.device)
