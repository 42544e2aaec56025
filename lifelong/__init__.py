"""lifelong: an online continual learner you can run, kill, resume and inspect.

The three names most programs need are here: ``run`` (train through a stream in a run
folder), ``RunConfig`` (every setting of a run) and ``Agent`` (the learner, for your own
loop). They are imported on first use (PEP 562), so ``import lifelong`` and the command line
start without torch.
"""

from importlib import import_module

__version__ = "0.1.0"

_WHERE = {
    "run": "lifelong.runner",
    "RunResult": "lifelong.runner",
    "RunConfig": "lifelong.config",
    "ConfigError": "lifelong.config",
    "Agent": "lifelong.learner.agent",
    "StreamSpec": "lifelong.learner.agent",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'lifelong' has no attribute {name!r}")
