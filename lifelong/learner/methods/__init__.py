"""Learning methods, one file per update rule, behind ``base.Method``.

``METHODS`` names the built-in ones: ``er`` (experience replay), ``der++`` (replay with
logit matching, the default), ``er-ace`` (asymmetric cross-entropy) and ``lamaml`` (learned
per-weight rates). ``method_class("package.module:Class")`` loads a user's own: a subclass
of ``Method`` in any importable module, run with ``lifelong run --method mymod:MyMethod``.
"""

from __future__ import annotations

from lifelong.errors import ConfigError
from lifelong.learner import user_code
from lifelong.learner.config import resolve
from lifelong.learner.methods.base import Method, NoSettings, Step, Update
from lifelong.learner.methods.derpp import DERpp
from lifelong.learner.methods.er import ER
from lifelong.learner.methods.er_ace import ERACE
from lifelong.learner.methods.lamaml import LaMAML

METHODS: dict[str, type[Method]] = {"er": ER, "der++": DERpp, "er-ace": ERACE, "lamaml": LaMAML}

__all__ = ["METHODS", "Method", "NoSettings", "Step", "Update", "method_class", "resolve"]


def method_class(name: str) -> type[Method]:
    """A built-in method by name, or ``package.module:Class`` imported."""
    if name in METHODS:
        return METHODS[name]
    cls = user_code.load(name, "method", METHODS)
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise ConfigError(f"method {name!r} is not a subclass of lifelong.learner.methods.Method")
    return cls
