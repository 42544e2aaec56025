"""TensorBoard scalars of a run, beside its own files: researchers watch runs there.

Written to ``RUN/tensorboard/`` (``tensorboard --logdir runs/``): the training loss, each
experience's test accuracy, average accuracy, forgetting and throughput, against the
agent's step. A resumed run purges what the killed process wrote after its last checkpoint,
so the curves have no doubled stretch.
"""

from __future__ import annotations

from pathlib import Path


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

    def experience_end(self, step: int, row: list[float], summary: dict) -> None:
        """The experience's accuracies and the run's summary as just published."""
        self.accuracies(step, row)
        self._writer.add_scalar("metrics/average_accuracy", summary["average_accuracy"], step)
        if summary["experiences_trained"] > 1:
            forgetting = summary["forgetting_chaudhry2018"]
            self._writer.add_scalar("metrics/forgetting_chaudhry2018", forgetting, step)
        if summary["samples_per_second"] is not None:
            speed = summary["samples_per_second"]
            self._writer.add_scalar("speed/examples_per_second", speed, step)

    def close(self) -> None:
        self._writer.close()
