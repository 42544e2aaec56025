"""A method that fails on purpose: a sweep's trial that breaks must not stop the others."""

from __future__ import annotations

from lifelong.learner.methods.er import ER


class Exploding(ER):
    """ER that raises at its first update."""

    def update(self, *args, **kwargs):
        raise RuntimeError("this method explodes on purpose")
