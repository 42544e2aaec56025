"""``History``: the served run over the last ten minutes, for the dashboard's charts and the
examples/s figure: a point at most once a second of (time, examples learned, online
accuracy, training loss), taken from each view the learner publishes."""

from __future__ import annotations

import collections
import time


class History:
    def __init__(self, seconds: int = 600) -> None:
        self.points: collections.deque = collections.deque(maxlen=seconds)

    def note(self, view: dict) -> None:
        """A point from a view just published, unless the last is under a second old."""
        now = time.time()
        if not self.points or now - self.points[-1][0] >= 1.0:
            self.points.append(_point(now, view))

    def examples_per_second(self, learned: int) -> float | None:
        """Learning throughput over the last minute, to now (``learned``, now): it falls
        to 0 while idle."""
        points = [p[:2] for p in self.points]
        if points:
            points.append((time.time(), learned))
        recent = [p for p in points if p[0] >= points[-1][0] - 60] if points else []
        if len(recent) < 2 or recent[-1][0] <= recent[0][0]:
            return None
        return (recent[-1][1] - recent[0][1]) / (recent[-1][0] - recent[0][0])

    def to_now(self, view: dict) -> list[list]:
        """Every point, and one for the view as it is now."""
        return [[round(t, 3), *rest] for t, *rest in [*self.points, _point(time.time(), view)]]


def _point(now: float, view: dict) -> tuple:
    return now, int(view.get("position") or 0), view.get("online_accuracy"), view.get("loss")
