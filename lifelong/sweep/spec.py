"""A sweep file (TOML) and the trials it names.

    [sweep]
    streams = ["split-digits"]
    seeds = "0-2"              # or [0, 1, 2]
    memory = 500
    search = "grid"            # or "random", with samples = N (per method) and search_seed
    cpus_per_trial = 1         # a Ray task's resources; gpus_per_trial = 0.25 where GPUs are
    device = "cpu"             # every trial's ("cuda" with gpus_per_trial > 0: Ray gives each
                               # trial its share of a GPU and shows it that GPU alone)

    [methods.ours]             # our agent: fixed and swept RunConfig keys, and its method's
                               # own settings (a user method's too)
    fixed = { batch_size = 10 }
    grid = { iters = [1, 5], distill = [0.5, 1.0] }

    [methods."der++"]          # an Avalanche strategy: its own settings, and lr
    grid = { alpha = [0.1, 0.3], beta = [0.5, 1.0] }

A method named like one of ``lifelong compare``'s Avalanche strategies is that strategy;
any other name is our agent (``fixed = { method = "er-ace" }`` picks its update rule).
Every value is checked here, before any trial starts, and the number of trials is counted
before any is built: past ``max_trials`` (10,000 unless lifted) the sweep is refused.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from lifelong.compare import parse_seeds
from lifelong.compare.strategies import BASELINES, check_options
from lifelong.config import ConfigError, RunConfig

MAX_TRIALS = 10_000  # past this a sweep is refused unless --max-trials lifts it
RESERVED = ("stream", "seed", "memory", "follow", "progress", "tensorboard", "device")


@dataclass(frozen=True)
class Trial:
    """One run: a method with its settings on one stream and seed."""

    method: str
    kind: str  # "ours" | "avalanche"
    stream: str
    seed: int
    memory: int
    params: dict = field(default_factory=dict)  # the swept keys' values
    fixed: dict = field(default_factory=dict)  # the method's fixed keys
    device: str = "cpu"  # where it trains (not part of its id: the numbers are the same)

    @property
    def id(self) -> str:
        """A folder name that says what the trial is (hashed where that gets long)."""
        slug = "_".join(f"{k}={_short(v)}" for k, v in sorted(self.params.items()))
        name = f"{self.method}_{self.stream}_seed{self.seed}" + (f"_{slug}" if slug else "")
        name = re.sub(r"[^A-Za-z0-9=._+-]", "-", name)
        if len(name) > 120:
            digest = hashlib.blake2b(json.dumps(self.to_dict(), sort_keys=True).encode())
            name = f"{self.method}_{self.stream}_seed{self.seed}_{digest.hexdigest()[:12]}"
        return name

    @property
    def configuration(self) -> str:
        """The trial without its seed: the unit results are averaged over."""
        slug = ", ".join(f"{k}={_short(v)}" for k, v in sorted(self.params.items()))
        return f"{self.method} [{slug}]" if slug else self.method

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "kind": self.kind,
            "stream": self.stream,
            "seed": self.seed,
            "memory": self.memory,
            "params": self.params,
            "fixed": self.fixed,
            "device": self.device,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Trial:
        return cls(**d)

    def run_config(self) -> RunConfig:
        """Our agent's config for this trial (its run folder's config)."""
        values = {
            **self.fixed,
            **self.params,
            "stream": self.stream,
            "seed": self.seed,
            "memory": self.memory,
            "progress": False,
            "tensorboard": False,
            "device": self.device,
        }
        return RunConfig.from_dict({**RunConfig().to_dict(), **values})


@dataclass(frozen=True)
class Sweep:
    name: str
    trials: list[Trial]
    swept: dict[str, list[str]]  # method -> its swept keys
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0  # a fraction of a GPU, where the cluster has GPUs


def _short(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def load(path: str | Path, max_trials: int = MAX_TRIALS) -> Sweep:
    """Read and check a sweep file; ConfigError naming the key at fault."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"sweep file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return parse(data, path.stem, max_trials)


def parse(data: dict, name: str, max_trials: int = MAX_TRIALS) -> Sweep:
    unknown = sorted(set(data) - {"sweep", "methods"})
    if unknown:
        raise ConfigError(f"unknown section(s) {unknown}; a sweep has [sweep] and [methods.NAME]")
    head = dict(data.get("sweep", {}))
    streams = head.pop("streams", None)
    if not streams or not isinstance(streams, list) or not all(isinstance(s, str) for s in streams):
        raise ConfigError('[sweep] streams must be a list of stream names, e.g. ["split-digits"]')
    seeds = head.pop("seeds", [0])
    seeds = parse_seeds(seeds) if isinstance(seeds, str) else seeds
    if not isinstance(seeds, list) or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ConfigError('[sweep] seeds must be a list of integers >= 0 or a range like "0-4"')
    memory = head.pop("memory", 500)
    if not isinstance(memory, int) or isinstance(memory, bool) or memory <= 0:
        raise ConfigError(f"[sweep] memory must be a positive integer, got {memory!r}")
    search = head.pop("search", "grid")
    samples = head.pop("samples", None)
    search_seed = head.pop("search_seed", 0)
    name = head.pop("name", name)
    cpus, gpus = head.pop("cpus_per_trial", 1), head.pop("gpus_per_trial", 0)
    device = head.pop("device", "cpu")
    if head:
        raise ConfigError(
            f"unknown [sweep] key(s) {sorted(head)}; known: name, streams, seeds, memory, "
            "search, samples, search_seed, cpus_per_trial, gpus_per_trial, device"
        )
    for key, v, low in (("cpus_per_trial", cpus, 0), ("gpus_per_trial", gpus, -1)):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > low:
            raise ConfigError(f"[sweep] {key} must be a number > {max(low, 0)}, got {v!r}")
    _check_device(device, gpus)
    _check_name(name)
    if search not in ("grid", "random"):
        raise ConfigError(f'[sweep] search must be "grid" or "random", got {search!r}')
    if search == "random" and (not isinstance(samples, int) or samples <= 0):
        raise ConfigError('[sweep] search = "random" needs samples = N (configurations per method)')
    methods = data.get("methods")
    if not methods or not isinstance(methods, dict):
        raise ConfigError("a sweep needs at least one [methods.NAME] table")
    from streams.names import stream_names

    known = stream_names()
    for s in streams:
        if s not in known:
            raise ConfigError(
                f"[sweep] streams: unknown stream {s!r} (see `lifelong streams list`)"
            )
    grids = {method: _grid(method, table) for method, table in methods.items()}
    sizes = {m: math.prod(len(v) for v in g.values()) for m, g in grids.items()}
    per_method = {m: min(n, samples) if search == "random" else n for m, n in sizes.items()}
    total = sum(per_method.values()) * len(streams) * len(seeds)
    if total > max_trials:
        counts = ", ".join(f"{m} {n:,}" for m, n in per_method.items())
        raise ConfigError(
            f"this sweep names {total:,} trials ({counts} settings x {len(streams)} stream(s) "
            f"x {len(seeds)} seed(s)), over the cap of {max_trials:,}: narrow the grid, use "
            'search = "random" with samples = N, or lift the cap with --max-trials'
        )
    trials, swept = [], {}
    rng = random.Random(search_seed)
    for method, table in methods.items():
        grid = grids[method]
        swept[method] = keys = sorted(grid)
        if search == "random" and samples < sizes[method]:
            picks = _sample_indices(sizes[method], samples, rng)
        else:
            picks = range(sizes[method])
        points = [_point(grid, keys, i) for i in picks]
        kind = "avalanche" if method in BASELINES else "ours"
        for stream, point, seed in itertools.product(streams, points, seeds):
            fixed = dict(table.get("fixed", {}))
            trial = Trial(method, kind, stream, seed, memory, point, fixed, device)
            _check(trial)
            trials.append(trial)
    return Sweep(name, trials, swept, float(cpus), float(gpus))


def _check_device(device, gpus: float) -> None:
    """A GPU device goes with a share of a GPU per trial, and a share of a GPU with a GPU
    device: otherwise trials would all crowd GPU 0, or hold GPUs they never use."""
    if not isinstance(device, str):
        raise ConfigError(f'[sweep] device must be text like "cuda", got {device!r}')
    try:
        RunConfig(device=device).validate()
    except ConfigError as exc:
        raise ConfigError(f"[sweep] {exc}") from None
    on_gpu = device.startswith("cuda") or device == "auto"
    if device.startswith("cuda") and not gpus:
        raise ConfigError(
            f'[sweep] device = "{device}" needs gpus_per_trial > 0 (each trial\'s share of a '
            "GPU, e.g. 0.25): Ray then shows each trial its own GPU"
        )
    if gpus and not on_gpu:
        raise ConfigError(
            f"[sweep] gpus_per_trial = {gpus:g} holds GPUs that trials on device "
            f'"{device}" never use: set device = "cuda" (or "auto")'
        )


def _grid(method: str, table) -> dict[str, list]:
    """The method's swept keys and their values, checked (nothing is multiplied out)."""
    if not isinstance(table, dict):
        raise ConfigError(f"[methods.{method}] must be a table")
    unknown = sorted(set(table) - {"fixed", "grid"})
    if unknown:
        raise ConfigError(f"[methods.{method}]: unknown key(s) {unknown}; use fixed and grid")
    grid = table.get("grid", {})
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"[methods.{method}] grid.{key} must be a non-empty list of values")
    clash = sorted((set(grid) | set(table.get("fixed", {}))) & set(RESERVED))
    if clash:
        raise ConfigError(
            f"[methods.{method}]: {clash} are set by [sweep] (streams, seeds, memory), "
            "not per method"
        )
    return grid


def _sample_indices(size: int, samples: int, rng: random.Random) -> list[int]:
    """``samples`` distinct grid points by their number, without building the grid. Where
    the grid fits a list, the draw is ``rng.sample`` of it (the points sweeps always drew)."""
    if size <= sys.maxsize:
        return rng.sample(range(size), samples)
    picked: dict[int, None] = {}
    while len(picked) < samples:  # a grid this large: repeats are all but impossible
        picked.setdefault(rng.randrange(size))
    return list(picked)


def _point(grid: dict[str, list], keys: list[str], index: int) -> dict:
    """Grid point number ``index`` in ``itertools.product`` order (the last key fastest)."""
    point = {}
    for key in reversed(keys):
        index, j = divmod(index, len(grid[key]))
        point[key] = grid[key][j]
    return {k: point[k] for k in keys}


def _check_name(name) -> None:
    """A sweep's name is its folder under ``sweeps/``: one plain folder name."""
    if (
        not isinstance(name, str)
        or name.strip() in ("", ".", "..")
        or any(c in name for c in "/\\\0")
    ):
        raise ConfigError(
            f"[sweep] name must be a plain folder name (its results go to sweeps/NAME), "
            f"got {name!r}"
        )


def _check(trial: Trial) -> None:
    """Every value of a trial, checked as its run would check it."""
    where = f"[methods.{trial.method}]"
    if trial.kind == "avalanche":
        try:
            check_options(trial.method, {**trial.fixed, **trial.params})
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        return
    try:  # keys no run setting has are the method's own: refused unless it has them
        trial.run_config().validate()
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
