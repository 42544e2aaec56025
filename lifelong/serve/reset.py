"""``lifelong serve --reset-log``: the way out when a run folder's ingest log is not the one
its checkpoint learned from (deleted by hand, or an older copy put back).

The checkpoint's place in the stream is a place in its own log, so with that log gone the
learned state cannot go on from it. Reset moves the log and everything learned from it into
``RUN/dropped-TIME/`` (nothing is deleted) and says what it moved; the folder then starts
afresh, under the same address and token.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from lifelong.run_folder import LOCK_NAME
from lifelong.serve import learner
from lifelong.serve.ingest_log import NAME as LOG_NAME
from lifelong.serve.ingest_log import IngestLog

KEPT = (LOCK_NAME, learner.FOLDER)  # the locks (the server holds serve/server.lock)
DROPPED_PREFIX = "dropped-"


def reset_log(run_dir: Path, echo: Callable[[str], None]) -> Path | None:
    """Move the log and the learned state aside; None (and a line) if there was nothing."""
    moving = sorted(
        p for p in run_dir.iterdir() if p.name not in KEPT and not p.name.startswith(DROPPED_PREFIX)
    )
    if not moving:
        echo(f"--reset-log: {run_dir} holds no log or learned state; nothing to move")
        return None
    what = [_log_summary(run_dir), _checkpoint_summary(run_dir)]
    aside = run_dir / f"{DROPPED_PREFIX}{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
    aside.mkdir()
    for p in moving:
        os.rename(p, aside / p.name)
    for name in (learner.VIEW, learner.WEIGHTS, learner.RESULTS, learner.ERROR):
        (run_dir / learner.FOLDER / name).unlink(missing_ok=True)  # what it published
    echo(
        f"--reset-log: moved {', '.join(w for w in what if w)} and {len(moving)} file(s) in "
        f"all to {aside} (nothing deleted); {run_dir} starts afresh"
    )
    return aside


def _log_summary(run_dir: Path) -> str:
    if not (run_dir / LOG_NAME).exists():
        return "no ingest log (it was deleted)"
    try:
        log = IngestLog(run_dir)
    except Exception as exc:  # a damaged file is moved aside all the same
        return f"an unreadable ingest log ({type(exc).__name__})"
    try:
        return (
            f"the ingest log ({log.last_seq} records: {log.received} examples acknowledged, "
            f"{log.experience} experiences ended)"
        )
    finally:
        log.close()


def _checkpoint_summary(run_dir: Path) -> str:
    state = run_dir / "checkpoint" / "state.pt"
    if not state.exists():
        return "no checkpoint"
    try:
        import torch

        progress = json.loads(torch.load(state, weights_only=True)["progress"])
    except Exception as exc:
        return f"an unreadable checkpoint ({type(exc).__name__})"
    return (
        f"the learned state (checkpoint at experience {progress.get('experience')}, "
        f"example {progress.get('position')})"
    )
