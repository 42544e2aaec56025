"""Compute, counted the same way for every method: gradient steps and FLOPs per incoming
example.

A gradient step is one move of the weights. FLOPs come from rows: an example passed forward
and back costs three forward passes (the usual estimate: the backward pass is two), one
passed forward only (keys, stored logits, a reference gradient's input) one; a forward pass
costs what torch's FLOP counter measures on the model for one example. Our agent counts its
rows itself (``Agent.trained_rows``, ``forward_rows``); an Avalanche strategy is metered
from outside (``AvalancheMeter``), by a hook on its model's forward and one on every
optimizer step, so neither side reports its own cost.
"""

from __future__ import annotations

import contextlib

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.utils.flop_counter import FlopCounterMode

BACKWARD_FACTOR = 3  # forward + backward of a row, in forward passes
PALETTE = (0, 2, 4, 8, 10, 12, 14, 16, 18, 1, 3, 5, 9, 11, 13, 15, 17, 19)  # tab20 without red


def forward_flops(model: torch.nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one example's forward pass (matrix products and convolutions)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *input_shape, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def flops_per_example(trained_rows: int, forward_rows: int, flops: int, examples: int) -> float:
    """FLOPs spent per incoming example, from rows passed forward and back / forward only."""
    return (BACKWARD_FACTOR * trained_rows + forward_rows) * flops / max(examples, 1)


class AvalancheMeter:
    """Counts an Avalanche strategy's weight updates and rows: a context that hooks the
    model's forward and every optimizer's step, counting while ``metering()`` is on (its
    training; evaluation between experiences is not training compute)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.steps = self.trained_rows = self.forward_rows = 0
        self._on = False
        self._hooks: list = []

    def __enter__(self) -> AvalancheMeter:
        self._hooks = [
            self.model.register_forward_hook(self._forward),
            register_optimizer_step_post_hook(self._step),
        ]
        return self

    def __exit__(self, *exc) -> None:
        for hook in self._hooks:
            hook.remove()

    @property
    def units(self) -> int:
        """Its compute so far in forward passes of one example (the stream clock's unit)."""
        return BACKWARD_FACTOR * self.trained_rows + self.forward_rows

    def _forward(self, module, args, output) -> None:
        if self._on and args:
            if torch.is_grad_enabled():
                self.trained_rows += len(args[0])
            else:
                self.forward_rows += len(args[0])

    def _step(self, optimizer, args, kwargs) -> None:
        self.steps += self._on

    @contextlib.contextmanager
    def metering(self):
        self._on = True
        try:
            yield
        finally:
            self._on = False

    @contextlib.contextmanager
    def paused(self):
        """Uncounted inside: a measurement made in the strategy's loop (its online answers)."""
        on, self._on = self._on, False
        try:
            yield
        finally:
            self._on = on


def plot_accuracy_against_compute(rows: list[dict], title: str, path) -> None:
    """Average accuracy against gradient steps and FLOPs per incoming example, one point
    per method (mean over seeds, error bar one std); the default agent at several budgets
    (``ours@S``, and ``ours`` at its own) as one line. ``rows``: ``compare.outputs.aggregate``'s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib import ticker

    rows = [r for r in rows if np.isfinite(r.get("flops_per_example", np.nan))]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110, sharey=True)
    for ax, key, label in (
        (axes[0], "gradient_steps_per_example", "gradient steps per incoming example"),
        (axes[1], "flops_per_example", "training FLOPs per incoming example"),
    ):
        on_line = [r for r in rows if r["method"] == "ours" or r["method"].startswith("ours@")]
        budgets = sorted(on_line, key=lambda r: r[key])
        if budgets:
            ax.errorbar(
                [r[key] for r in budgets],
                [r["average_accuracy"] for r in budgets],
                yerr=[r["average_accuracy_std"] for r in budgets],
                marker="o",
                color="C3",
                label="ours, ours@S (the default agent at S steps)",
            )
        for i, r in enumerate(r for r in rows if r not in on_line):
            ax.errorbar(
                r[key],
                r["average_accuracy"],
                yerr=r["average_accuracy_std"],
                marker="s" if r["method"].startswith("ours") else "^",
                linestyle="none",
                color=plt.get_cmap("tab20")(PALETTE[i % len(PALETTE)]),
                label=r["method"],
            )
        ax.set_xscale("log")
        # labels at 1, 2 and 5 of each decade, none on the minor ticks: on a range under a
        # decade matplotlib labels every minor tick, and they ran into each other
        ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel(label)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("average accuracy")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.suptitle(f"{title}: accuracy against compute (mean ± std over seeds)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
