"""Run configuration: one flat dataclass, read from TOML, overridden by flags, saved with the run.

Flat on purpose: every key is a command-line flag of the same name, and a run folder's
``config.toml`` says everything needed to reproduce its numbers.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path


class ConfigError(ValueError):
    """A configuration that cannot run, or that does not match an existing run folder."""


@dataclass
class RunConfig:
    # what to learn
    stream: str = "split-mnist5k"
    experiences: int = 0  # 0 = the stream's default
    seed: int = 0
    follow: str = ""  # a folder of .npz task files to follow instead of a named stream
    n_classes: int = 10  # follow mode only: the label space
    # the learner
    model: str = "auto"  # auto | mlp | cnn
    hidden: int = 100
    controller: bool = True  # La-MAML learned per-parameter rates; False = plain replay
    lr: float = 0.05  # replay mode's SGD rate; the controller's initial rate
    alpha_init: float = 0.05
    alpha_lr: float = 0.1  # step size of the learned rates
    inner_steps: int = 2  # look-ahead steps per incoming batch (controller)
    second_order: bool = False
    grad_clip: float = 2.0
    iters: int = 3  # gradient steps per incoming batch (each with a fresh replay batch)
    batch_size: int = 10
    ace: bool = True  # ER-ACE: the incoming loss only sees the incoming batch's classes
    # memory
    memory: int = 500
    write_policy: str = "reservoir"  # reservoir | class-balanced
    replay_policy: str = "class-balanced"  # uniform | class-balanced | task-balanced | retrieval
    replay_batch: int = 10
    key_source: str = "network"  # network | fixed (a fixed random projection of the input)
    rekey_every: int = 200  # steps between re-keying the memory with the drifted encoder
    index: str = "flat"
    # local adaptation at prediction (MbPA++)
    local_adapt: bool = False
    adapt_k: int = 16
    adapt_steps: int = 5
    adapt_lr: float = 0.05
    adapt_l2: float = 0.1
    # bookkeeping
    eval_every: int = 0  # steps; 0 = only after each experience
    checkpoint_every: int = 100  # steps; checkpoints are also written after each experience
    progress: bool = True

    # keys that may differ when resuming a run folder without changing its numbers
    RESUMABLE_CHANGES = ("progress", "checkpoint_every")

    def validate(self) -> RunConfig:
        choices = {
            "model": ("auto", "mlp", "cnn"),
            "write_policy": ("reservoir", "class-balanced"),
            "replay_policy": ("uniform", "class-balanced", "task-balanced", "retrieval"),
            "key_source": ("network", "fixed"),
            "index": ("flat", "hnsw", "ivf"),
        }
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{key} must be one of {allowed}, got {getattr(self, key)!r}")
        for key in ("batch_size", "memory", "iters", "inner_steps", "hidden"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key} must be positive, got {getattr(self, key)}")
        if self.lr <= 0 or self.alpha_init <= 0:
            raise ConfigError("lr and alpha_init must be positive")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RunConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config key(s) {unknown}")
        return cls(**data).validate()

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        return cls.from_dict(data)

    def dump(self, path: str | Path) -> None:
        lines = [f"{k} = {_toml_value(v)}" for k, v in self.to_dict().items()]
        Path(path).write_text("\n".join(lines) + "\n")

    def differences(self, other: RunConfig) -> dict[str, tuple]:
        """Keys whose values differ and would change the run's numbers."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if a[k] != b[k] and k not in self.RESUMABLE_CHANGES}


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
