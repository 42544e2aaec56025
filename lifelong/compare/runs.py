"""Every (method, seed) of a comparison: our agent by our runner, each Avalanche strategy
through its own loop, on the same stream and MLP; results merged with a folder's earlier
ones and written by ``outputs``. Accuracy matrices are computed by one function for
everyone, so the metrics differ only by what the methods learned.
"""

from __future__ import annotations

import random
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from lifelong import metrics
from lifelong.compare.baseline_model import accuracies, baseline_model
from lifelong.compare.earlier import REFINED, RENAMED_METHODS, earlier_runs
from lifelong.compare.outputs import write_outputs
from lifelong.compare.strategies import BASELINES, make_strategy, shuffles
from lifelong.config import ConfigError, RunConfig
from lifelong.learner import compute
from lifelong.learner.methods import method_class

# our agent as configured, with La-MAML's learned rates, and both at Avalanche's compute (one
# update per incoming batch of 10, replaying 10 memories); at one update a batch the plain
# step is larger and tighter clipped (lr 0.3, clip 1: +0.002 to +0.033, README's ablation)
OURS = {
    "ours": {},
    "ours-lamaml": {"learned_rates": True},
    "ours-1x": {"iters": 1, "replay_batch": 10, "lr": 0.3, "grad_clip": 1.0},
    "ours-lamaml-1x": {"learned_rates": True, "iters": 1, "replay_batch": 10},
}
METHODS = (*OURS, *BASELINES)
BUDGET_PREFIX = "ours@"  # ours@0.5: the default agent at 0.5 gradient steps per example


def ours_overrides(name: str, batch_size: int) -> dict:
    """The RunConfig keys a named variant of our agent sets: one of ``OURS``, or
    ``ours@S``, the default agent with S x batch updates per incoming batch (S gradient
    steps per example). ConfigError naming the problem otherwise."""
    if name in OURS:
        return OURS[name]
    if is_user_method(name):  # our agent with a user's update rule (its [method] options kept)
        return {"method": name}
    budget = name.removeprefix(BUDGET_PREFIX)
    try:
        steps = float(budget)
    except ValueError:
        raise ConfigError(f"{name!r}: {budget!r} is not a number of steps per example") from None
    if not 1 <= steps * batch_size < float("inf"):  # NaN too
        raise ConfigError(
            f"{name!r}: {steps} steps per example is not one update per batch of "
            f"{batch_size} or more (the least is {1 / batch_size:g})"
        )
    iters = round(steps * batch_size)
    if abs(iters - steps * batch_size) > 1e-9:
        raise ConfigError(
            f"{name!r}: {steps} steps per example is not a whole number of updates per "
            f"batch of {batch_size} (use a multiple of {1 / batch_size:g})"
        )
    return {"iters": iters}


def ours_config(name: str, cfg: RunConfig) -> RunConfig:
    """The config our agent runs row ``name`` with: ``cfg`` and the row's overrides. A
    [method] table's options belong to a user's method: rows of a built-in one run without."""
    c = replace(cfg, **ours_overrides(name, cfg.batch_size))
    return c if is_user_method(c.method) else replace(c, method_options={})


def is_ours(name: str) -> bool:
    """Run by our agent: a variant of ``OURS``, a budget ``ours@S``, or a user's method."""
    return name in OURS or name.startswith(BUDGET_PREFIX) or is_user_method(name)


def is_user_method(name: str) -> bool:
    """``package.module:Class``: a method a user wrote, run by our agent."""
    return ":" in name and not name.startswith(BUDGET_PREFIX)


def _order(name: str) -> tuple:
    """Table order: ours as configured, ours at each budget (ascending), the baselines."""
    if name.startswith(BUDGET_PREFIX):
        return (len(OURS) - 0.5, float(name.removeprefix(BUDGET_PREFIX)))
    return (METHODS.index(name) if name in METHODS else len(METHODS), 0.0)


def run_baseline(
    name: str,
    stream_name: str,
    seed: int,
    memory: int,
    cfg: RunConfig,
    options: dict | None = None,
    learned: list[list[tuple[int, int]]] | None = None,
    online: bool = True,
) -> dict:
    """One Avalanche strategy through the stream; the accuracy matrix and training time.
    ``learned``: under real time or late labels, the batches it learns in each experience's
    window (``schedule.schedule``); it trains on those alone, in the order they arrived.
    ``online``: measure its online accuracy (``online``), off its clocks."""
    import warnings

    import streams
    from lifelong.compare.continual_eval import continual_eval_plugin
    from lifelong.compare.online import online_plugin
    from lifelong.compare.schedule import answers_on_arrival, scheduled_stream
    from lifelong.learner.device import resolve_device

    torch.set_num_threads(1)
    device = resolve_device(cfg.device)
    stream = streams.get_stream(stream_name, experiences=cfg.experiences or None, seed=seed)
    experiences = list(stream)  # the test sets: whole under every protocol
    revealed = sum(e.n_train for e in experiences)
    windows = [[i] for i in range(len(experiences))]
    waits = learned is None  # the stream as its loader makes it: near-future accuracy too
    answers = online_plugin(name, near_future=waits and cfg.near_future) if online else None
    due = None  # window by window: each batch's answers on arrival (a scheduled stream's)
    every = cfg.eval_every
    evals = continual_eval_plugin(every, experiences, device) if every else None
    if learned is not None:
        if answers is not None:
            due = answers_on_arrival(
                stream, learned, cfg.batch_size, seed, cfg.shuffle, cfg.label_delay, cfg.near_future
            )
        stream, windows = scheduled_stream(stream, learned, cfg.batch_size, seed, cfg.shuffle)
    # recorded and dropped: Avalanche 0.6 re-enables its deprecation warnings on every call of
    # a deprecated function (its own replay plugin calls one), so an "ignore" filter loses
    with warnings.catch_warnings(record=True):
        torch.manual_seed(seed)
        # and the host's generators, which Avalanche's plugins draw from too (A-GEM fills its
        # memory by ``random.shuffle``): unseeded, its runs differed rerun to rerun
        random.seed(seed)
        np.random.seed(seed % 2**32)  # its legacy seeding takes 32 bits; ours take any seed
        model = baseline_model(stream, cfg.hidden).to(device)
        train = list(streams.to_avalanche(stream).train_stream) if len(stream) else []
        strategy = make_strategy(
            name, model, max(len(train), 1), memory, cfg.batch_size, cfg, options or {}, device
        )
        rows, untrained, seconds = [], accuracies(model, experiences, device), 0.0
        units = []  # each window's cost per batch, in the stream clock's unit
        with compute.AvalancheMeter(model) as meter:
            for plugin in (answers, evals):
                if plugin is not None:
                    strategy.plugins.append(plugin)
                    plugin.unmetered = meter.paused
            for w, pieces in enumerate(windows):  # no piece: nothing learned in its time
                before = meter.units
                if evals is not None:
                    evals.window = w
                if due is not None:
                    answers.start_window(next(due))
                for k in pieces:
                    t = time.perf_counter()
                    with meter.metering():
                        strategy.train(train[k], shuffle=shuffles(name, cfg.shuffle, waits))
                        _synchronize(device)
                    seconds += time.perf_counter() - t
                if due is not None:
                    answers.finish_window(strategy.model, device)
                # our runner's batches (a piece may join two experiences' partial last ones)
                if learned is not None:
                    batches = len(learned[w])
                else:
                    batches = -(-len(train[w].dataset) // cfg.batch_size)
                units.append((meter.units - before) / max(batches, 1))
                rows.append(accuracies(strategy.model, experiences, device))
                if evals is not None:
                    evals.seen(rows[-1])
    for plugin in (answers, evals):  # made inside its training, not its time
        if plugin is not None:
            seconds -= plugin.seconds
    n = sum(e.n_train for e in stream) if learned is not None else revealed
    flops = compute.forward_flops(model, stream.input_shape)
    result = {
        "method": name,
        "seed": seed,
        "matrix": rows,
        "untrained": untrained,
        "seconds": seconds,
        "samples_per_second": n / seconds if seconds else None,
        # each incoming example labelled right before its first update (None: not measured)
        "online_accuracy": answers.accuracy if answers is not None else None,
        "online_seen": answers.seen if answers is not None else None,
        "near_future_accuracy": answers.near_future_accuracy if answers is not None else None,
        "gradient_steps_per_example": meter.steps / max(n, 1),
        "flops_per_example": compute.flops_per_example(
            meter.trained_rows, meter.forward_rows, flops, n
        ),
        # its cost in the stream clock's unit (forward passes of one example), in all and
        # in each experience: what fixes its real-time schedule
        "compute_units_per_example": meter.units / max(n, 1),
        "compute_units_per_batch": units,  # by experience (its window, when scheduled)
    }
    if evals is not None:  # min-ACC and WC-ACC refined by every evaluation, not only the ends
        result["min_acc"] = metrics.min_acc(evals.lowest, len(rows))
        result["wc_acc"] = metrics.wc_acc(np.array(rows, float), evals.lowest)
        result["evaluations"] = evals.points
    if learned is not None:
        from lifelong.compare.schedule import batches_per_experience, learned_share

        result["learned_share"] = learned_share(
            learned, batches_per_experience(experiences, cfg.batch_size)
        )
    return result


def _synchronize(device) -> None:
    """Wait for a GPU's queued work: its time is the strategy's."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_ours(
    name: str, stream_name: str, seed: int, memory: int, cfg: RunConfig, out: Path
) -> dict:
    from lifelong.runner import run

    torch.set_num_threads(1)
    c = replace(ours_config(name, cfg), stream=stream_name, seed=seed, memory=memory)
    c.progress = False
    run_dir = out / f"{name.replace(':', '_')}-seed{seed}"
    # a folder left by an earlier compare would be resumed (or, finished, reported again with
    # its old timings): a comparison measures a run from its start
    shutil.rmtree(run_dir, ignore_errors=True)
    res = run(c, run_dir, echo=lambda m: None)
    return {
        "method": name,
        "seed": seed,
        "matrix": res.matrix.tolist(),
        "untrained": res.untrained,
        "seconds": res.summary["train_seconds"],
        "samples_per_second": res.summary["samples_per_second"],
        "gradient_steps_per_example": res.summary["gradient_steps_per_example"],
        "flops_per_example": res.summary["flops_per_example"],
        "online_accuracy": res.summary["online_accuracy"],
        **{k: res.summary[k] for k in REAL_TIME_KEYS if k in res.summary},
        # refined by its --eval-every points (without them, the matrix's, as everyone's)
        **({k: res.summary[k] for k in REFINED} if c.eval_every else {}),
    }


REAL_TIME_KEYS = ("learned_share", "near_future_accuracy")  # a real-time run's own measures


def _one(job: tuple) -> dict:
    name, stream_name, seed, memory, cfg, out, learned = job
    if is_ours(name):
        return run_ours(name, stream_name, seed, memory, cfg, out)
    return run_baseline(name, stream_name, seed, memory, cfg, learned=learned)


def compare(
    stream_name: str,
    seeds: list[int],
    methods: list[str],
    memory: int,
    cfg: RunConfig,
    out: Path,
    jobs: int = 1,
    address: str | None = None,
    echo=print,
) -> list[dict]:
    """Run every (method, seed); write results.json/.csv, table.md and comparison.png.
    One job and no Ray ``address``: here, one run after another; otherwise as Ray tasks
    (``jobs`` at a time) on the sweep's pool."""
    unknown = sorted(m for m in set(methods) - set(METHODS) if not is_ours(m))
    if unknown:
        renamed = [f"{m} is now {RENAMED_METHODS[m]}" for m in unknown if m in RENAMED_METHODS]
        raise ConfigError(
            f"unknown method(s) {unknown}; known: {list(METHODS)}, ours@S and your own "
            "package.module:Class" + (f" ({'; '.join(renamed)})" if renamed else "")
        )
    for m in methods:
        if is_ours(m):  # a budget that is no whole number of updates, a method that won't load
            ours_config(m, cfg).validate()
            if is_user_method(m):
                method_class(m)
    if address is None:  # a Ray cluster's workers may hold the GPU this machine lacks
        from lifelong.learner.device import learner_device

        learner_device(cfg.device, cfg.bf16)  # an absent GPU: one line, before the folder
    out.mkdir(parents=True, exist_ok=True)
    waiting = replace(cfg, real_time=False)
    todo = [(m, stream_name, s, memory, waiting, out, None) for s in seeds for m in methods]
    from lifelong.compare.real_time import late_label_jobs, real_time_jobs

    todo = late_label_jobs(todo, waiting, is_ours)  # every method given the same delay
    delay, every = cfg.label_delay, cfg.eval_every or 0
    protocol = (stream_name, memory, delay, every)
    where = out / REAL_TIME
    earlier = earlier_runs(out, protocol)  # a folder of another protocol: refused up front
    earlier_timed = earlier_runs(where, protocol) if cfg.real_time else []
    results = _merged(_run_all(todo, jobs, address, out, "compare"), earlier)
    write_outputs(results, stream_name, memory, out, delay, every)
    if cfg.real_time:  # the same methods and seeds again, on a stream that does not wait
        where.mkdir(exist_ok=True)
        todo = real_time_jobs(todo, results, replace(cfg, real_time=True), where, is_ours)
        timed = _merged(_run_all(todo, jobs, address, out, "real time"), earlier_timed)
        write_outputs(timed, stream_name, memory, where, delay, every)
    return results


REAL_TIME = "real-time"  # the subfolder of a compare's real-time rows


def rerun_ours(
    runs: list[tuple[str, int]],
    stream_name: str,
    memory: int,
    cfg: RunConfig,
    out: Path,
    jobs: int = 1,
    earlier: list[dict] | None = None,
) -> list[dict]:
    """Our methods' ``runs`` (method, seed) again, under ``cfg``'s protocol alone, merged
    with the ``earlier`` runs they replace: after a change to our agent, a published table
    again at a fraction of a whole compare's time, every Avalanche row kept as it was. A
    real-time row of ours needs no waiting run first (only a strategy's schedule is made
    from one); ``ours@S`` keeps its fixed budget there, as ``compare`` runs it."""
    theirs = sorted({m for m, _ in runs if not is_ours(m)})
    if theirs:
        raise ConfigError(f"rerun_ours reruns our methods only, not {theirs}: use compare")
    from lifelong.compare.real_time import real_time_jobs

    out.mkdir(parents=True, exist_ok=True)
    todo = [(m, stream_name, s, memory, cfg, out, None) for m, s in runs]
    if cfg.real_time:
        todo = real_time_jobs(todo, [], cfg, out, is_ours)
    return _merged(_run_all(todo, jobs, None, out, "ours again"), earlier or [])


def _run_all(todo: list[tuple], jobs: int, address: str | None, out: Path, desc: str):
    """Every job's result (here, or as Ray tasks), in table order, with its metrics."""
    from tqdm import tqdm

    from lifelong.sweep import pool

    bar = tqdm(total=len(todo), unit="run", desc=desc, disable=not todo[0][4].progress)
    finished = {}
    calls = [(job,) for job in todo]
    for i, r in pool.results(_one, calls, jobs=jobs, address=address, pids=out / "ray.pids"):
        finished[i] = r
        bar.update()
    bar.close()
    results = sorted(
        (finished[i] for i in range(len(todo))), key=lambda r: (_order(r["method"]), r["seed"])
    )
    for r in results:
        R = np.array(r["matrix"], float)
        refined = {k: r[k] for k in REFINED if k in r}  # with --eval-every
        r.update(metrics.summary(R, r["untrained"]), **refined)
    return results


def _merged(results: list[dict], earlier: list[dict]) -> list[dict]:
    """This compare's runs and the earlier ones it did not redo, in the table's order."""
    redone = {(r["method"], r["seed"]) for r in results}
    kept = [r for r in earlier if (r["method"], r["seed"]) not in redone]
    return sorted(kept + results, key=lambda r: (_order(r["method"]), r["seed"]))


def parse_seeds(text: str) -> list[int]:
    """ "0-4" or "0,2,5" or "3"; ConfigError naming the part that is not."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        try:
            first, last = int(lo), int(hi) if dash else int(lo)
        except ValueError:
            raise ConfigError(
                f"--seeds: {part!r} is not a seed or a range like 0-4 (seeds are integers >= 0)"
            ) from None
        if last < first:
            raise ConfigError(f"--seeds: range {part!r} is empty (write it low-high, e.g. 0-4)")
        seeds += range(first, last + 1)
    return seeds
