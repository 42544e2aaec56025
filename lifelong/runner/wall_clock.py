"""The real-time protocol on a real clock, for a served run: batches arrive when clients send
them, and a learner still learning when one is logged answers it and does not learn it.

``StreamClock`` counts time in compute so that a named stream's run is the same on any
machine; a served stream has no such schedule: its batches carry the time the ingest log
took them (``Record.received``), and the learner's busy time is the seconds its update
took. Every batch of a request arrives at once, so a request of five batches to a learner
that is free learns the first and answers four: the stream did not wait.

With ``--fit-compute`` the plan of ``lifelong/learner/budget.py`` still sizes each update;
its budget, in the compute clock's unit, is the measured time between arrivals over the
measured seconds per unit of the learner's own updates (both running averages), so the
same plan serves a stream whose rate is only known by watching it. Decisions depend on
the machine's speed and the clients' timing, and so are not reproducible run to run; what
a run learned is recorded (``learned_batches`` at each experience end) and its clock is
checkpointed, and a learner restarted after a crash takes the batches that came while it
was down as a stream that did not wait would: it learns the first and, busy with it,
answers the rest.

A followed folder on the wall clock (``run --follow DIR --real-time --wall-clock``) has its
stream's own times: each task file's ``t``, the second each training example arrived (a
recorded stream's timestamps, or a writer's ``time.time()``), a batch arriving with its
last example. Those are not this machine's clock, so the learner there is busy from a
batch's arrival for the seconds its update took (``replayed``), and the wait for files is
no part of the stream's time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from lifelong.runner.clock import StreamClock

AVERAGE_WEIGHT = 0.1  # a new reading's weight in the running averages of gap and unit time


@dataclass
class WallClock(StreamClock):
    """A stream clock in seconds since the epoch; ``now`` is the clock read (a test's own)."""

    wall: bool = True  # tells ``from_dict`` which clock a checkpoint holds
    first_arrival: float | None = None
    last_arrival: float | None = None
    gap_seconds: float | None = None  # running average of the time between two arrivals
    unit_seconds: float | None = None  # running average of the learner's seconds per unit
    replayed: bool = False  # arrivals are the stream's own times (a followed file's ``t``)
    now: Callable[[], float] = field(default=time.time, repr=False, compare=False)

    def arrive(self, at: float | None = None) -> bool:
        """A batch logged at ``at``; True if the learner was done learning by then."""
        at = self.now() if at is None else at
        if self.last_arrival is not None:
            self.gap_seconds = _averaged(self.gap_seconds, max(at - self.last_arrival, 0.0))
        if self.first_arrival is None:
            self.first_arrival = at
        self.last_arrival = at
        self.arrived += 1
        return self.waits or at >= self.busy_until

    def room(self) -> float | None:
        """The compute one batch may take, in the plan's unit: none until the stream's pace
        and the learner's speed have been seen once."""
        if self.gap_seconds is None or not self.unit_seconds:
            return None
        return self.gap_seconds / self.unit_seconds

    def idle(self) -> float:
        """The compute, in the plan's unit, until the next batch is due at the stream's
        measured pace (unbounded until that pace and the learner's speed are seen)."""
        if self.gap_seconds is None or not self.unit_seconds or self.last_arrival is None:
            return math.inf
        free = max(self.busy_until, self.last_arrival if self.replayed else self.now())
        return max(0.0, self.last_arrival + self.gap_seconds - free) / self.unit_seconds

    def took(self, cost: float, number: int | None = None, seconds: float = 0.0) -> None:
        """The learner learned the arriving batch: ``cost`` units in ``seconds``, and is free
        from now on."""
        self.busy_until = self.last_arrival + seconds if self.replayed else self.now()
        self.spent += seconds
        if cost > 0 and seconds > 0:
            self.unit_seconds = _averaged(self.unit_seconds, seconds / cost)
        self.learned.append(self.arrived - 1 if number is None else number)

    def busy(self, cost: float) -> None:
        """Work between batches (an experience's end) has just finished: free from now."""
        if self.replayed:  # as long as that compute takes at the learner's measured speed
            self.busy_until = max(self.busy_until, self.last_arrival or 0.0)
            self.busy_until += cost * (self.unit_seconds or 0.0)
        else:
            self.busy_until = max(self.busy_until, self.now())

    def summary(self, agent) -> dict:
        out = super().summary(agent)
        elapsed = (self.last_arrival or 0.0) - (self.first_arrival or 0.0)
        out.update(
            clock="wall",
            stream_interval=None,
            seconds_between_batches=self.gap_seconds,
            compute_used_share=self.spent / elapsed if elapsed > 0 else None,
        )
        return out

    def to_dict(self) -> dict:
        data = asdict(self)
        del data["now"]
        return data


def clock_for_run(
    cfg, checkpointed: dict | None, named: bool, timed: bool, recorded: bool = False
) -> StreamClock | None:
    """A run's clock: as checkpointed, or new: in seconds where a served stream's or a timed
    followed folder's batches carry the time they came (real time); in compute where the
    stream does not wait or labels late; for near-future accuracy alone on a named stream
    that waits and labels at once (its next batch is there to predict; a live one's is not),
    unless that measure is off. None otherwise, and for a run resumed from a checkpoint made
    without one."""
    if checkpointed is not None:
        return clock_from_dict(checkpointed)
    if timed and cfg.real_time:  # ``recorded``: the stream's own times, not this machine's
        return WallClock(interval=0.0, replayed=recorded)
    clock = StreamClock.for_run(cfg.batch_size, cfg.stream_rate)
    clock.waits, clock.delayed = not cfg.real_time, cfg.label_delay > 0
    return clock if (cfg.real_time or cfg.label_delay or (named and cfg.near_future)) else None


def clock_from_dict(data: dict) -> StreamClock:
    """The clock a checkpoint holds: the wall clock's dict says so."""
    return WallClock(**data) if data.get("wall") else StreamClock(**data)


def _averaged(average: float | None, reading: float) -> float:
    return reading if average is None else (1 - AVERAGE_WEIGHT) * average + AVERAGE_WEIGHT * reading
