"""Continual evaluation for an Avalanche strategy (De Lange et al., ICLR 2023), as our runner's
``--eval-every`` does it: every N training iterations, accuracy on every test set, each
earlier experience's lowest since it was learned kept, so min-ACC and WC-ACC see the drop
right after a boundary (the stability gap) that experience ends hide.

Avalanche's loop is its own; a plugin in it evaluates after every N-th iteration (one
iteration per minibatch, as our agent makes one step per batch), off the compute meter and
the training time, with the same ``accuracies`` every matrix row is made with.
"""

from __future__ import annotations

import contextlib
import time

import torch

from lifelong import metrics
from lifelong.compare.baseline_model import accuracies


def continual_eval_plugin(every: int, experiences: list, device):
    """A plugin evaluating every ``every`` iterations on ``experiences``' test sets."""
    from avalanche.core import SupervisedPlugin

    class ContinualEvaluation(SupervisedPlugin):
        def __init__(self) -> None:
            super().__init__()
            self.iterations = 0
            self.window = 0  # the experience whose time it is: those before it were learned
            self.lowest: list = []
            self.points = 0
            self.seconds = 0.0  # spent evaluating: not the strategy's training time
            self.unmetered = contextlib.nullcontext  # the compute meter's pause, if metered

        def after_training_iteration(self, strategy, **kwargs) -> None:
            self.iterations += 1
            if self.iterations % every:
                return
            started = time.perf_counter()
            with self.unmetered(), torch.no_grad():
                self.seen(accuracies(strategy.model, experiences, device))
            self.points += 1
            self.seconds += time.perf_counter() - started

        def seen(self, row: list[float]) -> None:
            """One evaluation (a point, or an experience end's row) in the current window."""
            self.lowest = metrics.lowest_since_learned(self.lowest, self.window, row)

    return ContinualEvaluation()
