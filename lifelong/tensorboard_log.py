"""TensorBoard scalars of a run, beside its own files: researchers watch runs there.

Written to ``RUN/tensorboard/`` (``tensorboard --logdir runs/``): the training loss, each
experience's test accuracy, average accuracy, forgetting and throughput, against the
agent's step. A resumed run purges what the killed process wrote after its last checkpoint,
so the curves have no doubled stretch.
"""

from __future__ import annotations

from pathlib import Path

from lifelong import metrics


class Scalars:
    """A thin SummaryWriter for one run folder (opened lazily: it costs about a second)."""

    def __init__(self, run_dir: Path, resume_step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(
            str(run_dir / "tensorboard"), purge_step=resume_step or None, flush_secs=10
        )

    def loss(self, step: int, value: float) -> None:
        self._writer.add_scalar("train/loss", value, step)

    def accuracies(self, step: int, row: list[float]) -> None:
        for j, acc in enumerate(row):
            self._writer.add_scalar(f"accuracy/experience_{j}", acc, step)

    def experience_end(self, step: int, rows: list[list[float]], examples_per_s: float) -> None:
        self.accuracies(step, rows[-1])
        R = metrics.matrix_from_rows(rows)
        self._writer.add_scalar("metrics/average_accuracy", metrics.average_accuracy(R), step)
        if len(rows) > 1:
            self._writer.add_scalar(
                "metrics/forgetting_chaudhry2018", metrics.forgetting_chaudhry2018(R), step
            )
        self._writer.add_scalar("speed/examples_per_second", examples_per_s, step)

    def close(self) -> None:
        self._writer.close()
