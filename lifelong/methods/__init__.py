"""Learning methods, one file per update rule, behind ``base.Method``.

``METHODS`` names the built-in ones: ``er`` (experience replay), ``der++`` (replay with
logit matching, the default), ``er-ace`` (asymmetric cross-entropy) and ``lamaml`` (learned
per-weight rates). ``method_class("package.module:Class")`` loads a user's own: a subclass
of ``Method`` in any importable module, run with ``lifelong run --method mymod:MyMethod``.
"""

from __future__ import annotations

import importlib
import os
import sys

from lifelong.errors import ConfigError
from lifelong.learner_config import resolve
from lifelong.methods.base import Method, NoSettings, Update
from lifelong.methods.derpp import DERpp
from lifelong.methods.er import ER
from lifelong.methods.er_ace import ERACE
from lifelong.methods.lamaml import LaMAML

METHODS: dict[str, type[Method]] = {"er": ER, "der++": DERpp, "er-ace": ERACE, "lamaml": LaMAML}

__all__ = ["METHODS", "Method", "NoSettings", "Update", "method_class", "resolve"]


def _import(module: str):
    """Import ``module`` from the path, or else from the current folder (where a user's
    method file usually sits; the ``lifelong`` script does not put it on the path)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module.split(".")[0] or os.getcwd() in sys.path:
            raise
        sys.path.insert(0, os.getcwd())
        return importlib.import_module(module)


def method_class(name: str) -> type[Method]:
    """A built-in method by name, or ``package.module:Class`` imported."""
    if name in METHODS:
        return METHODS[name]
    module, sep, attr = name.partition(":")
    if not sep:
        raise ConfigError(
            f"unknown method {name!r}; built in: {sorted(METHODS)}, or package.module:Class"
        )
    try:
        cls = getattr(_import(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load method {name!r}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise ConfigError(f"method {name!r} is not a subclass of lifelong.methods.Method")
    return cls
