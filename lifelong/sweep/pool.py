"""Where trials run: Ray (a local cluster started for you, or ``--address``), or, for one
job and no address, this process.

Ray only schedules: a task is a call of a plain function whose arguments and result are
small dicts; what a trial makes stays in its run folder on a shared disk. ``jobs`` caps the
tasks in flight (a fair share of a shared cluster; locally, the cores to use).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from lifelong.config import ConfigError


def results(
    fn: Callable,
    calls: list[tuple],
    *,
    jobs: int = 1,
    address: str | None = None,
    on_start: Callable[[float], None] = lambda seconds: None,
    pids: Path | None = None,
    cpus: float = 1,
    gpus: float = 0,
    echo: Callable[[str], None] = print,
) -> Iterator[tuple[int, object]]:
    """(index, ``fn(*calls[index])``) as each finishes. With no address and one job the
    calls run here, one after another; otherwise as Ray tasks, at most ``jobs`` at a time
    (every core of a local cluster by default). ``on_start`` hears Ray's start-up seconds.

    ``pids`` is a file for the local cluster's process ids: Ray leaves some of them running
    when the process that started it is killed (ray-project/ray#2005), and the next call
    with the same file ends those that are still there, orphaned. Each task asks for
    ``cpus`` CPUs and, where the cluster has GPUs, ``gpus`` of one."""
    if not calls:
        return
    if address is None and jobs == 1:
        for i, args in enumerate(calls):
            yield i, fn(*args)
        return
    if pids is not None and address is None:
        reap(pids)
    ray = _ray(address, jobs, on_start)
    if pids is not None and address is None:
        _record(pids)
    try:
        cluster = ray.cluster_resources()
        if gpus and not cluster.get("GPU"):
            echo(f"the cluster has no GPU: trials run without the {gpus} GPU each they ask")
            gpus = 0
        remote = ray.remote(num_cpus=cpus, num_gpus=gpus)(fn)
        limit = jobs if jobs > 0 else max(1, int(cluster.get("CPU", 1) // cpus))
        pending, waiting = {}, list(enumerate(calls))
        while pending or waiting:
            while waiting and len(pending) < limit:
                i, args = waiting.pop(0)
                pending[remote.remote(*args)] = i
            done, _ = ray.wait(list(pending), num_returns=1)
            if pids is not None and address is None:
                _record(pids)  # the agents and workers the cluster started since
            for ref in done:
                yield pending.pop(ref), ray.get(ref)
    finally:
        ray.shutdown()
        if pids is not None:
            pids.unlink(missing_ok=True)


def _record(path: Path) -> None:
    """This process's descendants (the local cluster): pid and start time, so a pid reused
    by an unrelated process since is never taken for one of them."""
    import psutil

    found = psutil.Process().children(recursive=True)
    path.write_text("".join(f"{p.pid} {p.create_time()}\n" for p in found))


def reap(path: Path) -> int:
    """End the processes an earlier, killed start of the cluster left orphaned; how many."""
    import psutil

    try:
        lines = path.read_text().split()
    except FileNotFoundError:
        return 0
    ended = 0
    for pid, started in zip(lines[::2], lines[1::2]):
        try:
            p = psutil.Process(int(pid))
            if abs(p.create_time() - float(started)) < 0.01 and p.ppid() == 1:
                p.kill()
                ended += 1
        except (psutil.Error, ValueError):
            continue
    path.unlink(missing_ok=True)
    return ended


def _ray(address: str | None, jobs: int, on_start: Callable[[float], None]):
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home from a laptop
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is a dependency
        raise ConfigError("Ray is not installed: pip install ray") from None
    started = time.perf_counter()
    options = dict(
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=True,
        logging_level="ERROR",
    )
    try:
        if address:
            ray.init(address=address, **options)
        else:
            cores = os.cpu_count() or 1
            ray.init(
                num_cpus=jobs if jobs > 0 else cores,
                object_store_memory=256 << 20,  # results are small dicts
                **options,
            )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(
            f"cannot start or reach Ray at {address or 'this machine'}: {exc}"
        ) from None
    on_start(time.perf_counter() - started)
    return ray
