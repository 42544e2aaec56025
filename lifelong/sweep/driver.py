"""``sweep``: run a sweep's unfinished trials on the pool, with one progress bar, and
write its results as trials finish."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tqdm import tqdm

from lifelong.config import ConfigError
from lifelong.errors import RunFolderBusy
from lifelong.run_folder import take_lock
from lifelong.sweep import pool, results
from lifelong.sweep.spec import Sweep, Trial
from lifelong.sweep.trial import finished, run_trial
from stores.files import write_atomic
from stores.folder import release_lock

PLAN, LOCK = "sweep.json", "sweep.lock"


def sweep(
    plan: Sweep,
    out: str | Path,
    *,
    address: str | None = None,
    jobs: int = 0,
    progress: bool = True,
    echo=print,
) -> tuple[list[dict], dict]:
    """Run every trial not finished in ``out`` (an earlier start's are kept; half-done ones
    resume from their checkpoints); the rows of all trials and the paths written."""
    out = Path(out)
    lock = _lock(out)
    try:
        return _sweep(plan, out, address, jobs, progress, echo)
    finally:
        release_lock(lock)


def _lock(out: Path) -> int:
    """One sweep per folder: two drivers would run the same trials into the same folders."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    fd, holder = take_lock(out / LOCK)
    if fd is None:
        raise RunFolderBusy(
            f"{out} is being swept by another lifelong sweep (pid {holder}); wait for it "
            "(started again, a sweep keeps what finished), or use another --out"
        )
    return fd


def _sweep(plan: Sweep, out: Path, address, jobs: int, progress: bool, echo):
    _adopt(out, plan)
    rows = {t.id: row for t in plan.trials if (row := finished(out, t)) is not None}
    todo = [t for t in plan.trials if t.id not in rows]
    if rows:
        echo(f"{len(rows)} of {len(plan.trials)} trials already finished in {out}: kept")
    bar = tqdm(
        total=len(plan.trials),
        initial=len(rows),
        unit="trial",
        desc="sweep",
        disable=not progress,
        dynamic_ncols=True,
    )
    failed = 0

    def started(seconds: float) -> None:
        echo(f"Ray ready in {seconds:.1f} s")

    slots = jobs if jobs > 0 else max(1, int((os.cpu_count() or 1) // plan.cpus_per_trial))
    try:
        calls = [(t.to_dict(), str(out)) for t in todo]
        bar.set_postfix(running=min(len(todo), slots), failed=0)
        for done, (i, row) in enumerate(
            pool.results(
                run_trial,
                calls,
                jobs=jobs,
                address=address,
                on_start=started,
                pids=out / "ray.pids",
                cpus=plan.cpus_per_trial,
                gpus=plan.gpus_per_trial,
                echo=echo,
            ),
            1,
        ):
            rows[todo[i].id] = row
            if row["status"] != "ok":
                failed += 1
                echo(f"trial {todo[i].id} failed: {row['error']}")
            bar.update()
            bar.set_postfix(running=min(len(todo) - done, slots), failed=failed)
            results.write(list(rows.values()), plan.swept, out, plan.name, plots=False)
    finally:
        bar.close()
    paths = results.write(list(rows.values()), plan.swept, out, plan.name)
    return list(rows.values()), paths


def _adopt(out: Path, plan: Sweep) -> None:
    """Record the sweep's trials in ``out``; a folder of another sweep (other names) is
    refused rather than mixed."""
    path = out / PLAN
    if path.exists():
        try:
            earlier = json.loads(path.read_text())
        except ValueError:
            earlier = {}
        if earlier.get("name") not in (None, plan.name):
            raise ConfigError(
                f"{out} holds sweep {earlier['name']!r}, not {plan.name!r}; use another --out"
            )
    record = {
        "name": plan.name,
        "swept": plan.swept,
        "trials": [t.to_dict() for t in plan.trials],
        "cpus_per_trial": plan.cpus_per_trial,
        "gpus_per_trial": plan.gpus_per_trial,
    }
    write_atomic(path, json.dumps(record, indent=2))


def load_plan(out: Path) -> Sweep:
    """The sweep recorded in a sweep folder (``lifelong report SWEEP_DIR``)."""
    data = json.loads((Path(out) / PLAN).read_text())
    return Sweep(data["name"], [Trial.from_dict(t) for t in data["trials"]], data["swept"])
