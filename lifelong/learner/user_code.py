"""Loading a user's own code named ``package.module:name`` (a method class, a model factory).

The module is imported from the path, or else from the current folder: where a user's file
usually sits, and the ``lifelong`` script does not put it on the path.
"""

from __future__ import annotations

import importlib
import os
import sys

from lifelong.errors import ConfigError


def load(spec: str, what: str, built_in) -> object:
    """The object ``spec`` (``package.module:name``) names; ConfigError naming ``what``
    when it is no such thing, listing ``built_in`` as the alternatives."""
    module, sep, attr = spec.partition(":")
    if not sep:
        raise ConfigError(
            f"unknown {what} {spec!r}; built in: {list(built_in)}, or package.module:name"
        )
    try:
        return getattr(_import(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load {what} {spec!r}: {exc}") from None


def _import(module: str):
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module.split(".")[0] or os.getcwd() in sys.path:
            raise
        sys.path.insert(0, os.getcwd())
        return importlib.import_module(module)
