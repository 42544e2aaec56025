"""The run: one agent driven through a stream inside a run folder, resumably.

``run`` (``main.py``) opens the folder (lock, identity, checkpoint, store) and hands the loop
to ``Training`` (``training.py``: batches, evaluations, checkpoints, the event log); where
experiences come from is ``Source`` (``source.py``: a named stream, a followed folder or a live
stream), what the folder says of itself is checked by ``identity.py``, signals and the tests'
pause are ``signals.py``, and what a run publishes (``summary.json``, the matrix, the
one-screen summary) is ``results.py``.
"""

from lifelong.errors import DiskFull
from lifelong.runner.main import run
from lifelong.runner.results import RunResult, format_summary
from lifelong.runner.training import RESUME_HINT, RunHooks, evaluate, learning_order

__all__ = [
    "RESUME_HINT",
    "DiskFull",
    "RunHooks",
    "RunResult",
    "evaluate",
    "format_summary",
    "learning_order",
    "run",
]
