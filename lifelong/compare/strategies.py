"""The Avalanche strategies we compare against: their names, their own settings under the
shared protocol, and each built as ``compare`` and ``sweep`` train it. A sweep's settings are
checked here before any trial starts (Avalanche would fail on a bad one mid-run)."""

from __future__ import annotations

import math

import torch

from lifelong.config import ConfigError, RunConfig

BASELINES = (
    "naive",
    "replay",
    "er-ace",
    "der++",
    "lamaml",
    "mer",
    "a-gem",
    "gdumb",
    "ewc",
    "lwf",
    "cumulative",
)


def strategy_settings(name: str, n_exp: int, memory: int, batch: int, cfg: RunConfig) -> dict:
    """An Avalanche strategy's own settings under the shared protocol (what a sweep may
    override, beside ``lr``)."""
    replay = dict(mem_size=memory, batch_size_mem=batch)
    return {
        "naive": {},
        "cumulative": {},
        "replay": dict(mem_size=memory),
        "er-ace": replay,
        "der++": dict(replay, alpha=0.1, beta=0.5),
        "mer": replay,
        "a-gem": dict(patterns_per_exp=memory // n_exp, sample_size=batch * 10),
        "gdumb": dict(mem_size=memory),
        # at lr 0.1, lambda 100 diverged to chance on permuted- and rotated-mnist5k from the
        # second experience on (30 on split-digits); 10 never did, on any README stream
        "ewc": dict(ewc_lambda=10.0),
        "lwf": dict(alpha=1.0, temperature=2.0),
        "lamaml": dict(
            n_inner_updates=cfg.inner_steps,
            second_order=cfg.second_order,
            grad_clip_norm=cfg.grad_clip,
            learn_lr=True,
            lr_alpha=cfg.alpha_lr,
            alpha_init=cfg.alpha_init,
            max_buffer_size=memory,
            buffer_mb_size=batch,
        ),
    }[name]


def check_options(name: str, options: dict) -> None:
    """ConfigError unless every key of ``options`` is ``lr`` or one of the strategy's, with a
    value of its kind (checked here: Avalanche would fail on it mid-run, or train on it)."""
    known = {"lr": 0.1, **strategy_settings(name, 1, 10, 10, RunConfig())}
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"{name} has no setting(s) {unknown}; it takes {sorted(known)}")
    for key, value in options.items():
        want = _option_problem(key, known[key], value)
        if want is not None:
            raise ConfigError(f"{name}: {key} must be {want}, got {value!r}")


def _option_problem(key: str, default, value) -> str | None:
    """What a strategy setting must be, when ``value`` is not that: its default's kind (a
    flag, a count, a number) and range; None when it is."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        ok = number and isinstance(value, int) and value > 0
        return None if ok else "a whole number > 0"
    if key in ("lr", "temperature", "alpha_init", "lr_alpha"):
        return None if number and math.isfinite(value) and value > 0 else "a number > 0"
    return None if number and math.isfinite(value) and value >= 0 else "a number >= 0"


def make_strategy(
    name: str, model, n_exp: int, memory: int, batch: int, cfg: RunConfig, options: dict, device
):
    """An Avalanche strategy with the shared protocol (SGD, batch, one epoch, memory, the
    device our agent runs on); ``options`` overrides its own settings (``alpha``, ``beta``
    of DER++...) and ``lr``."""
    import avalanche.training as T
    from avalanche.training.plugins import EvaluationPlugin
    from avalanche.training.supervised.lamaml_v2 import LaMAML

    check_options(name, options)
    options = dict(options)
    lr = options.pop("lr", 0.1 if name != "lamaml" else cfg.alpha_init)
    shared = dict(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=lr),
        criterion=torch.nn.CrossEntropyLoss(),
        train_mb_size=batch,
        train_epochs=1,
        eval_mb_size=1000,
        device=device,
        evaluator=EvaluationPlugin(loggers=[]),
    )
    classes = {
        "naive": T.Naive,
        "cumulative": T.Cumulative,
        "er-ace": T.ER_ACE,
        "der++": T.DER,
        "mer": T.MER,
        "a-gem": T.AGEM,
        "gdumb": T.GDumb,
        "ewc": T.EWC,
        "lwf": T.LwF,
        "lamaml": LaMAML,
    }
    settings = {**strategy_settings(name, n_exp, memory, batch, cfg), **options}
    if name == "replay":  # Avalanche's Replay, its memories drawn at random in any order
        from lifelong.compare.replay_order import StreamOrderReplay

        return T.Naive(**shared, plugins=[StreamOrderReplay(**settings)])
    return classes[name](**shared, **settings)


OWN_ORDER = ("cumulative", "gdumb")  # they train on data of their own making, not the stream


def shuffles(name: str, shuffle: bool, waits: bool) -> bool:
    """Whether strategy ``name`` shuffles what it trains on: Cumulative (every past
    experience again) and GDumb (its buffer) always; any other only where the stream waits
    and ``shuffle`` is on, a window of a stream that does not wait being learned in the
    order its batches arrived."""
    return name in OWN_ORDER or (shuffle and waits)
