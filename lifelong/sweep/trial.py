"""One trial, run where Ray puts it: a run folder under ``SWEEP/trials/ID/``.

Our agent's trial is ``lifelong run`` in that folder, so a trial stopped half way resumes
from its checkpoint; an Avalanche strategy's trial (no checkpoints of its own) starts again.
A finished trial leaves ``result.json`` (its row of the results) and a failed one
``error.txt``; a failure is returned as a row, never raised, so it stops no other trial.
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path

from lifelong import metrics
from lifelong.sweep.spec import Trial
from stores.files import write_atomic

RESULT, ERROR = "result.json", "error.txt"


def trial_dir(sweep_dir: Path, trial: Trial) -> Path:
    return Path(sweep_dir) / "trials" / trial.id


def finished(sweep_dir: Path, trial: Trial) -> dict | None:
    """The trial's result if it finished (in an earlier start of the sweep too)."""
    path = trial_dir(sweep_dir, trial) / RESULT
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def run_trial(trial: dict, sweep_dir: str) -> dict:
    """Run one trial (a plain dict, as Ray ships it) to its end; its row of the results."""
    t = Trial.from_dict(trial)
    folder = trial_dir(Path(sweep_dir), t)
    folder.mkdir(parents=True, exist_ok=True)
    row = {"trial": t.id, "configuration": t.configuration, **t.to_dict(), **t.params}
    started = time.perf_counter()
    try:
        outcome = _run_ours(t, folder) if t.kind == "ours" else _run_avalanche(t)
    except Exception as exc:
        (folder / ERROR).write_text(traceback.format_exc())
        return {**row, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    (folder / ERROR).unlink(missing_ok=True)
    result = {**row, "status": "ok", **outcome, "wall_seconds": time.perf_counter() - started}
    write_atomic(folder / RESULT, json.dumps(metrics.json_ready(result), indent=2))
    return json.loads((folder / RESULT).read_text())  # the same row a later start reads


def _run_ours(t: Trial, folder: Path) -> dict:
    import torch

    from lifelong.run_folder import when_free
    from lifelong.runner import run

    torch.set_num_threads(1)
    # a worker of a driver killed a moment ago may still hold the folder
    result = when_free(lambda: run(t.run_config(), folder / "run", echo=lambda m: None), 60.0)
    s = result.summary
    outcome = _outcome(
        result.matrix.tolist(),
        result.untrained,
        s["train_seconds"],
        s["samples_per_second"],
        s["gradient_steps_per_example"],
    )
    timed = {k: s[k] for k in ("near_future_accuracy", "learned_share") if k in s}  # real time
    return {**outcome, "online_accuracy": s["online_accuracy"], **timed}


def _run_avalanche(t: Trial) -> dict:
    from lifelong.compare import run_baseline
    from lifelong.config import RunConfig

    options = {**t.fixed, **t.params}
    r = run_baseline(t.method, t.stream, t.seed, t.memory, RunConfig(device=t.device), options)
    return _outcome(r["matrix"], r["untrained"], r["seconds"], r["samples_per_second"], None)


def _outcome(matrix, untrained, seconds, samples_per_second, steps) -> dict:
    import numpy as np

    summary = metrics.summary(np.array(matrix, float), untrained)
    return {
        **summary,
        "train_seconds": seconds,
        "samples_per_second": samples_per_second,
        "gradient_steps_per_example": steps,
        "matrix": matrix,
    }
