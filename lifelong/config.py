"""Run configuration: one flat dataclass, read from TOML, overridden by flags, saved with the run.

Flat on purpose: every key is a command-line flag of the same name, and a run folder's
``config.toml`` says everything needed to reproduce its numbers.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from lifelong.config_file import SECTIONS, _flatten, _renamed, _toml_value
from lifelong.errors import ConfigError
from lifelong.learner.config import LearnerConfig, resolve

__all__ = ["SECTIONS", "ConfigError", "RunConfig"]


def opt(default, help: str):
    """A config field whose help text is also the ``lifelong run`` flag's help."""
    return field(default=default, metadata={"help": help})


@dataclass
class RunConfig:
    # what to learn
    stream: str = opt("split-mnist5k", "named stream (see `lifelong streams list`)")
    experiences: int = opt(0, "number of experiences; 0 = the stream's default")
    seed: int = opt(0, "seed of the stream, the model and every sampler")
    follow: str = opt("", "follow a folder of .npz task files instead of a named stream")
    n_classes: int = opt(10, "follow mode and serve: size of the label space")
    # the learner
    device: str = opt(
        "cpu", "where the learner runs: cpu | cuda | cuda:N | mps | auto (CUDA when present)"
    )
    cuda_graph: bool = opt(
        True,
        "on a GPU, capture the learning step once as a CUDA graph and replay it (off: "
        "launch it op by op)",
    )
    bf16: bool = opt(
        False,
        "bf16 autocast of the forward pass on a GPU, for the backbones that train through "
        "autograd (the CNN and the ResNets; the MLP's closed-form step stays fp32)",
    )
    method: str = opt(
        "auto",
        "er | der++ | er-ace | lamaml | package.module:Class (auto: lamaml with --learned-rates, "
        "er-ace with --ace, der++ with --distill > 0, else er)",
    )
    model: str = opt(
        "auto",
        "auto | mlp | cnn | reduced-resnet18 | resnet18 | package.module:factory (auto: CNN "
        "for colour images, else MLP; a factory gets the input shape and the class count)",
    )
    hidden: int = opt(100, "hidden width (MLP: input-hidden-hidden-classes)")
    learned_rates: bool = opt(
        False, "La-MAML's learned per-weight learning rates (off: replay + SGD)"
    )
    lr: float = opt(0.1, "SGD rate of plain replay (learned rates off)")
    alpha_init: float = opt(0.05, "initial learned rate of every weight (learned rates)")
    alpha_lr: float = opt(0.03, "step size of the learned rates (learned rates)")
    inner_steps: int = opt(2, "look-ahead steps per incoming batch (learned rates)")
    second_order: bool = opt(False, "differentiate through the look-ahead (learned rates)")
    grad_clip: float = opt(2.0, "clip gradient norms to this (0: off)")
    iters: int = opt(5, "updates per incoming batch, each with a fresh replay batch")
    batch_size: int = opt(10, "incoming batch size (the stream is seen once)")
    shuffle: bool = opt(
        True, "shuffle each experience before batching (off: as given; serve: arrival order)"
    )
    real_time: bool = opt(
        False,
        "real-time protocol: the stream reveals batches at --stream-rate whether or not the "
        "learner is done; a busy learner answers a batch and does not learn it",
    )
    stream_rate: float = opt(
        1.0,
        "real time: batches revealed per plain-replay update (B incoming + B replayed, "
        "forward and back, on the run's model): time counted in compute, not seconds",
    )
    wall_clock: bool = opt(
        False,
        "real time in seconds (follow mode): each task file's examples arrive at its t (seconds, "
        "one a training example); the learner is busy for what its updates take here, so runs "
        "differ machine to machine (off: the compute clock, the same anywhere)",
    )
    label_delay: int = opt(
        0,
        "batches between a batch's arrival and its labels: predicted on arrival, learned "
        "when the labels come (named streams; 0: at once)",
    )
    fit_compute: bool = opt(
        True,
        "real time: size each batch's updates and replay to the time the stream leaves, up "
        "to --iters and --replay-batch (off: those always, skipping what they overrun)",
    )
    near_future: bool = opt(
        True,
        "near-future accuracy: as each batch arrives, predict the one after it (named "
        "streams; one prediction a batch, off the training time; off: not measured)",
    )
    ace: bool = opt(False, "ER-ACE: the incoming loss only sees its own batch's classes")
    distill: float = opt(1.0, "DER: weight of matching memories' logits from when written (MSE)")
    refresh_logits: bool = opt(True, "with distill: renew an experience's logits at its end")
    # memory
    memory: int = opt(500, "episodic memory capacity")
    write_policy: str = opt("reservoir", "reservoir | class-balanced")
    replay_policy: str = opt("class-balanced", "uniform | class-balanced | task-balanced")
    replay_batch: int = opt(32, "memories replayed per update")
    gate: bool = opt(
        True,
        "learned prediction controller: mixes the head with the memory's class prototypes, "
        "its weights learned on each incoming batch and the memories about to be replayed, "
        "before the network learns them (off: the head)",
    )
    average_weights: float = opt(
        0.995,
        "decay of a running average of the weights that predicts once no class has been new "
        "for 3/(1-decay) steps (domain-incremental streams); 0: off",
    )
    key_source: str = opt("network", "memory keys: network (embedding) | fixed (projection)")
    rekey_every: int = opt(0, "steps between re-keying memories (0: experience ends only)")
    index: str = opt("flat", "FAISS index of the memory: flat | hnsw | ivf | ivfpq")
    # local adaptation at prediction (MbPA++)
    local_adapt: bool = opt(False, "MbPA++ local adaptation at prediction time")
    adapt_k: int = opt(16, "local adaptation: nearest memories per test example")
    adapt_steps: int = opt(5, "local adaptation: gradient steps")
    adapt_lr: float = opt(0.05, "local adaptation: step size")
    adapt_l2: float = opt(0.1, "local adaptation: pull towards the unadapted weights")
    # bookkeeping
    eval_every: int = opt(0, "evaluate every N steps for finer curves (0: experience ends)")
    checkpoint_every: int = opt(0, "also checkpoint every N steps (0: off)")
    checkpoint_seconds: float = opt(60.0, "also checkpoint when this long since the last (0: off)")
    progress: bool = opt(True, "show a progress bar")
    tensorboard: bool = opt(True, "write TensorBoard scalars to RUN/tensorboard")
    threads: int = opt(
        0,
        "torch threads; 0: one for the MLP (its small products lose more to thread "
        "hand-offs than they gain), every core for the CNN",
    )
    # a user's method's own settings (the TOML file's [method] keys no other method has)
    method_options: dict = field(default_factory=dict, metadata={"help": ""})

    # keys that may differ when resuming a run folder without changing its numbers
    RESUMABLE_CHANGES = (
        "progress",
        "tensorboard",
        "checkpoint_every",
        "checkpoint_seconds",
        "device",  # a checkpoint made on one device resumes on another
        "cuda_graph",
    )

    def validate(self) -> RunConfig:
        """Every value's type and range, checked before anything is created: the message
        names the key, so a bad TOML value or flag never half-starts a run."""
        for f in fields(self):
            _check_type(f.name, getattr(self, f.name), str(f.type))
        choices = {
            "write_policy": ("reservoir", "class-balanced"),
            "replay_policy": ("uniform", "class-balanced", "task-balanced"),
            "key_source": ("network", "fixed"),
            "index": ("flat", "hnsw", "ivf", "ivfpq"),
        }
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{key} must be one of {allowed}, got {getattr(self, key)!r}")
        for key in _POSITIVE:
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key} must be positive, got {getattr(self, key)!r}")
        for key in _NON_NEGATIVE:
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must be zero or positive, got {getattr(self, key)!r}")
        if not 0 <= self.average_weights < 1:
            raise ConfigError(
                f"average_weights is a decay in [0, 1) (0: off), got {self.average_weights!r}"
            )
        if not re.fullmatch(r"cpu|cuda(:\d+)?|mps|auto", self.device):
            raise ConfigError(
                f"unknown device {self.device!r}: use cpu, cuda, cuda:N, mps or auto "
                "(CUDA when present, else the CPU)"
            )
        if not self.stream:
            raise ConfigError("stream must name a stream (see `lifelong streams list`)")
        if self.model not in BUILT_IN_MODELS and ":" not in self.model:
            raise ConfigError(
                f"model must be one of {BUILT_IN_MODELS} or package.module:factory, "
                f"got {self.model!r}"
            )
        if self.method not in BUILT_IN_METHODS and ":" not in self.method:
            raise ConfigError(
                f"method must be one of {BUILT_IN_METHODS} or package.module:Class, "
                f"got {self.method!r}"
            )
        if self.method_options:
            self._check_method_options()
        if self.label_delay and self.follow:
            raise ConfigError(
                "label_delay needs a named stream: a followed folder's batches are not kept "
                "to learn when their labels come"
            )
        if self.wall_clock and not (self.follow and self.real_time):
            raise ConfigError(
                "wall_clock times a followed folder's stream in seconds: it needs --follow and "
                "--real-time (a named stream's real time is in compute; serve's is in seconds)"
            )
        if self.learned_rates and self.method not in ("auto", "lamaml"):
            raise ConfigError(
                f"--learned-rates is La-MAML's: it cannot go with method {self.method!r}"
            )
        return self

    def _check_method_options(self) -> None:
        """Options the method's settings do not have are refused, never recorded unused."""
        from lifelong.learner.methods import method_class

        name = resolve(self.to_dict())
        own = {f.name for f in fields(method_class(name).Settings)}
        unknown = sorted(set(self.method_options) - own)
        if unknown:
            raise ConfigError(
                f"unknown config key(s) {unknown}: no run setting has that name, and method "
                f"{name!r} has no such setting (its settings: {sorted(own) or 'none'})"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    def learner(self) -> LearnerConfig:
        """The learner's own settings: what an Agent needs, none of the run's."""
        values = self.to_dict()
        own = {f.name for f in fields(LearnerConfig)} - {"method", "method_values"}
        return LearnerConfig(
            **{k: values[k] for k in own},
            method=resolve(values),
            method_values={**values, **self.method_options},
        )

    @classmethod
    def from_dict(cls, data: dict) -> RunConfig:
        """From flat keys (every key a flag) or sections: ``[run]``, ``[learner]`` and
        ``[method]``, whose keys no built-in setting has go to ``method_options``."""
        if any(isinstance(v, dict) for k, v in data.items() if k != "method_options"):
            data = _flatten(data)
        known = {f.name for f in fields(cls)}
        data = _renamed(dict(data))
        # flat keys no run setting has are the method's own (as a [method] table's are);
        # validate() refuses those the method has not either, naming its settings
        options = dict(data.get("method_options") or {})
        options.update({k: data.pop(k) for k in sorted(set(data) - known)})
        return cls(**{**data, "method_options": options}).validate()

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        return cls.from_dict(data)

    def dumps(self) -> str:
        """The config as TOML text in sections (what ``load`` reads back)."""
        values = self.to_dict()
        extra = values.pop("method_options")
        out = []
        for section, keys in SECTIONS.items():
            out.append(f"[{section}]")
            out += [f"{k} = {_toml_value(values[k])}" for k in keys]
            if section == "method":
                out += [f"{k} = {_toml_value(v)}" for k, v in sorted(extra.items())]
            out.append("")
        return "\n".join(out)

    def dump(self, path: str | Path) -> None:
        Path(path).write_text(self.dumps())

    def differences(self, other: RunConfig) -> dict[str, tuple]:
        """Keys whose values differ and would change the run's numbers."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if a[k] != b[k] and k not in self.RESUMABLE_CHANGES}


BUILT_IN_METHODS = ("auto", "er", "der++", "er-ace", "lamaml")
BUILT_IN_MODELS = ("auto", "mlp", "cnn", "reduced-resnet18", "resnet18")
_POSITIVE = (
    "batch_size",
    "stream_rate",
    "memory",
    "iters",
    "inner_steps",
    "hidden",
    "replay_batch",
    "n_classes",
    "lr",
    "alpha_init",
    "adapt_k",
    "adapt_lr",
)
_NON_NEGATIVE = (
    "label_delay",
    "experiences",
    "seed",
    "alpha_lr",
    "grad_clip",
    "distill",
    "rekey_every",
    "adapt_steps",
    "adapt_l2",
    "eval_every",
    "checkpoint_every",
    "checkpoint_seconds",
    "threads",
)


def _check_type(key: str, value, kind: str) -> None:
    """ConfigError naming ``key`` unless ``value`` is of the field's type (and finite)."""
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value!r}")
    elif kind == "dict":
        ok = isinstance(value, dict) and all(isinstance(k, str) for k in value)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"{key} must be {_KIND_NAMES[kind]}, got {value!r}")


_KIND_NAMES = {
    "bool": "true or false",
    "int": "an integer",
    "float": "a number",
    "str": "text",
    "dict": "a table of named values",
}
