"""Online accuracy for an Avalanche strategy: each incoming example labelled by the model
right before the strategy first learns it, as our agent's online accuracy counts.

Avalanche's loop is its own, but it calls its plugins before every training iteration with
the minibatch in hand: the plugin predicts that minibatch's incoming rows there, before the
update. Which rows are incoming: all of them, except under Avalanche's Replay, whose loader
puts the experience's rows first and the replayed ones after (``ReplayDataLoader``); the
plugin counts the experience's rows down as they pass, so a replayed row is never counted.
A strategy whose minibatches are not the stream as it comes has no online accuracy here:
Cumulative (every past experience again) and GDumb (its buffer, from scratch).

Near-future accuracy (Hammoud et al., ICCV 2023), on a stream that waits: as minibatch t
arrives, the model that has learned up to t - 1 predicts minibatch t + 1's incoming rows.
The plugin cannot see t + 1 at t, so it keeps the weights it met at t (``Behind``) and
answers t + 1 with them when t + 1 comes; the stream is the strategy's own minibatches, in
its loader's order, across experiences.

On a stream that does not wait, or whose labels come late, the strategy trains each window's
batches in the order they arrived, and the plugin answers by a schedule fixed before its loop
(``schedule.answers_on_arrival``): each arriving batch, and the batch after it (near-future),
by the model of the window's iterations made before that arrival, as our runner answers them.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import torch

from lifelong.compare.schedule import Answer
from lifelong.compare.strategies import OWN_ORDER

NOT_ONLINE = OWN_ORDER  # their minibatches are not the stream as it arrives


@dataclass
class Behind:
    """A model's weights as they were one minibatch back, and the task heads it had then."""

    state: dict
    heads: set[int] | None

    @classmethod
    def of(cls, model) -> Behind:
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return cls(state, _heads(model))

    @contextlib.contextmanager
    def swapped_into(self, model):
        """``model`` with these weights for the duration (a head added since keeps its own;
        ``heads`` says it was not there)."""
        now = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.state, strict=False)
        try:
            yield model
        finally:
            model.load_state_dict(now)


def online_plugin(name: str, near_future: bool = False):
    """The plugin for strategy ``name``, or None where online accuracy has no meaning;
    ``near_future``: count near-future accuracy too, from its own minibatches (a stream that
    waits; a scheduled window's near-future answers come with its schedule)."""
    if name in NOT_ONLINE:
        return None
    from avalanche.core import SupervisedPlugin

    class OnlineAnswers(SupervisedPlugin):
        """Counts right answers to incoming rows before each update or, in a scheduled
        window, to each batch as it arrives."""

        def __init__(self) -> None:
            super().__init__()
            self.correct = self.seen = 0
            self.remaining = 0  # the experience's rows not yet seen in a minibatch
            self.iterations = 0  # training iterations made in the current window
            self.due: list[Answer] | None = None  # a scheduled window's answers, in order
            self.seconds = 0.0  # spent answering: not the strategy's training time
            self.near_correct = self.near_seen = 0
            self.behind: Behind | None = None  # the weights met at the last minibatch
            self.unmetered = contextlib.nullcontext  # the compute meter's pause, if metered

        def start_window(self, due: list[Answer]) -> None:
            """A scheduled window starts: answer ``due`` as its iterations reach them."""
            self.iterations, self.due = 0, sorted(due, key=lambda a: a.after)

        def finish_window(self, model, device) -> None:
            """Answer what is still due, with the window's final model."""
            self._answer_due(model, device, upto=None)

        def before_training_exp(self, strategy, **kwargs) -> None:
            self.remaining = len(strategy.adapted_dataset)

        def before_training_iteration(self, strategy, **kwargs) -> None:
            started = time.perf_counter()
            with self.unmetered():
                if self.due is not None:
                    self._answer_due(strategy.model, strategy.device, upto=self.iterations)
                else:
                    self._answer_incoming(strategy)
            self.iterations += 1
            self.seconds += time.perf_counter() - started

        def _answer_incoming(self, strategy) -> None:
            """A waiting stream: the minibatch's incoming rows, before the update."""
            n = min(self.remaining, strategy.train_mb_size, len(strategy.mb_y))
            self.remaining -= n
            x, y, t = strategy.mb_x[:n], strategy.mb_y[:n], strategy.mb_task_id[:n]
            self.correct += _hits(strategy.model, x, y, t)
            self.seen += n
            if near_future and n:
                self._look_back(strategy.model, x, y, t)

        def _answer_due(self, model, device, upto: int | None) -> None:
            while self.due and (upto is None or self.due[0].after <= upto):
                a = self.due.pop(0)
                t = torch.full((len(a.y),), a.task, dtype=torch.int64, device=device)
                hits = _hits(model, a.x.to(device), a.y.to(device), t)
                if a.near:
                    self.near_correct += hits
                    self.near_seen += len(a.y)
                else:
                    self.correct += hits
                    self.seen += len(a.y)

        def _look_back(self, model, x, y, t) -> None:
            """Answer this minibatch as the model of two minibatches back (the arrival of
            the last one) would have, then keep the weights met now for the next."""
            if self.behind is not None:
                with self.behind.swapped_into(model):
                    self.near_correct += _hits(model, x, y, t, self.behind.heads)
                self.near_seen += len(y)
            self.behind = Behind.of(model)

        @property
        def accuracy(self) -> float | None:
            return self.correct / self.seen if self.seen else None

        @property
        def near_future_accuracy(self) -> float | None:
            return self.near_correct / self.near_seen if self.near_seen else None

    return OnlineAnswers()


def _heads(model) -> set[int] | None:
    """The tasks a multi-head model has a head for (None: not multi-head)."""
    from avalanche.models import MultiTaskModule

    if not isinstance(model, MultiTaskModule):
        return None
    return {int(k) for k in model.classifier.classifiers}


@torch.no_grad()
def _hits(model, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor, heads=None) -> int:
    """Right answers of ``model`` (eval mode, then back): a multi-head model answers with
    each row's task head, and a task it has no head for yet (``heads``: those it had, where
    its weights are from before) gets no right answer."""
    from avalanche.models import avalanche_forward

    if not len(y):
        return 0
    known = _heads(model) if heads is None else heads
    if known is not None:
        keep = torch.tensor([int(v) in known for v in t.tolist()], device=y.device)
        x, y, t = x[keep], y[keep], t[keep]
        if not len(y):
            return 0
    was_training = model.training
    model.eval()
    try:
        logits = avalanche_forward(model, x, t)
    finally:
        model.train(was_training)
    return int((logits.argmax(1) == y).sum())
