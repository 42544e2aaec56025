"""The compute plan: how many updates to make on a batch, and how many memories to replay
in each, so that learning it fits the time a stream that does not wait leaves.

A stream that waits gets the configured ``iters`` and ``replay_batch``. Under the real-time
protocol a learner that overruns the time between two batches does not learn the next one
at all (``lifelong/runner/clock.py``), and one update on every batch beats five on every
tenth (Ghunaim et al., CVPR 2023; Prabhu et al., CVPR 2023). So each batch's update is
sized to the budget, counted as the clock counts (forward passes of one example; forward
and back is ``BACKWARD_FACTOR``), from what the agent will do: its updates' rows (the
method says how many), its forward-only rows (the prediction controller's own forward when
the update does not hand one over, the weight average's watch when due). The plan never
exceeds the configured ``iters`` or ``replay_batch``, and prefers, among plans that train
as many rows, fewer updates with more replay (more of the past per step).

It never replays fewer memories than a quarter of the incoming batch, though
(``REPLAY_FLOOR``): where even one update with that much replay does not fit, it makes one
update anyway, the largest that fits the whole intervals the least such update takes (the
batches it misses leave it that time; idle, it would be lost). Cutting the replay to fit
learns more batches, nearly without replay, and forgets: at stream rates 1.5, 2 and 4 the
rule kept more final accuracy on 13 of 15 stream-rate pairs (+0.004 to +0.121), and less on
split-digits at rates 2 and 4 (docs/benchmarks.md). At rate 1 or slower nothing changes:
one update of a quarter batch of replay always fits.
"""

from __future__ import annotations

import math

from lifelong.learner.compute import BACKWARD_FACTOR
from lifelong.learner.replay_memory import EXPERIENCE

# One update a batch learns more with a larger, tighter-clipped step (the README's ablation:
# lr 0.3 and clip 1 beside the default's 0.1 and 2 at five updates, +0.004 to +0.033 over six
# streams): a plan that cuts a configured k > 1 updates to one scales the step so.
ONE_UPDATE_LR, ONE_UPDATE_CLIP = 3.0, 0.5
REPLAY_FLOOR = 0.25  # memories replayed per incoming example, at the least (once held)


def apply(agent, updates: int, replayed: int) -> None:
    """Make the agent's next batch ``updates`` x ``replayed``, with the one-update step when
    the plan cut the configured updates to one (for methods with an SGD ``lr`` and
    ``grad_clip``; a user's method keeps its settings)."""
    agent.iters, agent.replay_batch = updates, replayed
    settings, values = agent.method.settings, agent.cfg.method_values
    if not all(hasattr(settings, k) and k in values for k in ("lr", "grad_clip")):
        return
    one = updates == 1 < agent.cfg.iters
    settings.lr = values["lr"] * (ONE_UPDATE_LR if one else 1.0)
    settings.grad_clip = values["grad_clip"] * (ONE_UPDATE_CLIP if one else 1.0)


def plan(agent, incoming: int, budget: float) -> tuple[int, int]:
    """(updates, memories replayed per update) for a batch of ``incoming`` examples within
    ``budget``; where not even one update of ``least_replay`` fits, the plan within the whole
    budgets (intervals) that update takes."""
    cfg, method = agent.cfg, agent.method
    held = len(agent.memory)
    least = least_replay(agent, incoming)
    best: tuple[int, int, int] | None = None  # (rows trained, -updates, replayed)
    for updates in range(1, cfg.iters + 1):
        for replayed in range(min(cfg.replay_batch, held), least - 1, -1):
            trained = method.rows_for(incoming, replayed)
            cost = BACKWARD_FACTOR * updates * trained + _forward_only(agent, incoming, replayed)
            if cost <= budget:
                option = (updates * trained, -updates, replayed)
                best = option if best is None or option > best else best
                break
    if best is None:  # it will overrun: the whole intervals it takes are its to use
        over = cost_of(agent, incoming, 1, least)
        whole = math.ceil(over / budget) * budget if budget > 0 else over
        return plan(agent, incoming, max(whole, over))  # (1, least) fits that: no deeper
    return -best[1], best[2]


def least_replay(agent, incoming: int) -> int:
    """The fewest memories a planned update replays: ``REPLAY_FLOOR`` per incoming
    example (at least one, once there are memories), within the configured replay and
    the memories held."""
    held = len(agent.memory)
    if not held:
        return 0
    return min(max(1, math.ceil(REPLAY_FLOOR * incoming)), agent.cfg.replay_batch, held)


def cost_of(agent, incoming: int, updates: int, replayed: int) -> float:
    """What the plan expects a batch learned with ``updates`` x ``replayed`` to cost."""
    trained = agent.method.rows_for(incoming, min(replayed, len(agent.memory)))
    return BACKWARD_FACTOR * updates * trained + _forward_only(agent, incoming, replayed)


def _forward_only(agent, incoming: int, replayed: int) -> int:
    """Rows the next batch passes forward only, beside its updates (as ``Agent._learn``
    and ``Agent.observe`` count them)."""
    rows = 0
    if agent.gate is not None and not agent.method.forward_in_step:
        rows += incoming + min(replayed, len(agent.memory))
    elif agent.gate is None and not agent.method.logits_before_update:
        rows += incoming
    if agent.average is not None and agent.average.due(agent.steps + 1):
        rows += incoming
    return rows


def refreshes(cost: float, idle: float) -> bool:
    """Whether an experience's end renews its memories' logits (``cost``: its
    ``boundary_cost``), given the ``idle`` compute before the next batch: not where it would
    overrun that. The refresh is worth little (at most 0.01 of final accuracy where the
    stream waits, README's ablation), and on a stream that does not wait its pass made the
    learner miss the next experience's first batches, the ones that teach it the new classes
    (split-mnist5k in real time: near-future accuracy 0.79 with the refresh, 0.84 without;
    docs/benchmarks.md)."""
    return cost <= idle


def boundary_cost(agent, experience: int) -> float:
    """What an experience's end costs the learning, in the clock's unit: the forward pass
    that renews the logits of that experience's memories, where the method replays logits
    and renews them (``Agent.end_experience``). The same pass re-keys every memory in the
    store; that is upkeep of the store, as the keys of every flush are, and not charged."""
    distill = getattr(agent.method.settings, "distill", 0)
    if not (distill and agent.cfg.refresh_logits and agent.spec.scenario != "task-free"):
        return 0.0
    n = len(agent.memory)
    return float((agent.memory.info[:n, EXPERIENCE] == experience).sum())
