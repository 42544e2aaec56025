"""When the agent's weight average predicts, and how it takes the weights: the class
bookkeeping that keeps it from answering right after a class arrives (where it would lag),
and its watch, run inside a captured step where the step was captured."""

from __future__ import annotations

import contextlib

import torch


def note_classes(agent, y: torch.Tensor) -> None:
    """Remember the step of the last class that was new (on the device: no host read)."""
    fresh = ~agent.classes_seen.index_select(0, y).all()
    agent.classes_seen.index_fill_(0, y, True)
    agent.last_new_class_step.masked_fill_(fresh, agent.steps + 1)


def averaging(agent) -> bool:
    """Whether the weight average predicts: once three of its horizons (1 / (1 - decay)
    steps) have passed since a class was new, so it has absorbed every class it is asked
    about. On a domain-incremental stream that is nearly always; on a class-incremental one,
    never right after a class arrives."""
    if agent.average is None:
        return False
    return agent.steps - int(agent.last_new_class_step) >= 3 * agent.average.horizon


def answers_arrivals(agent) -> bool:
    """Whether the weight average answers a batch as it arrives (online and near-future
    answers): where it predicts and its watch found it, lately, no worse than the live
    weights on incoming batches. A test set asks about every experience learned, where the
    average forgets less; an arriving batch asks about the stream as it is now, where the
    average lags behind a moving input (reads the device)."""
    if not averaging(agent):
        return False
    return not bool(agent.average.own_loss > agent.average.live_loss)  # NaN: not watched yet


@contextlib.contextmanager
def predicting_weights(agent, arriving: bool = False):
    """The weights predictions use, in the model for the duration: the running average when
    it predicts (for an ``arriving`` batch, when it also answers arrivals), else the
    weights as they are."""
    if not (answers_arrivals(agent) if arriving else averaging(agent)):
        yield
        return
    with agent.average.swapped_in(agent.model):
        yield


def take(agent, x, y, live_logits) -> None:
    """The average watches the batch and takes the weights: as the tail of the captured step
    that learned the batch, where one did, else eagerly."""
    step = next((s for s in agent._steps.values() if s.made(live_logits)), None)
    if step is not None:
        step.then()
    else:
        update(agent, x, y, live_logits)


def update(agent, x, y, live_logits) -> None:
    """The average's own watch and take (its forward pass neither uses nor moves the batch
    statistics)."""
    with agent.forward.mode():
        agent.average.update(agent.model, x, y, live_logits)
