"""``LearnerConfig``: the learner's own settings, apart from the run's.

What an ``Agent`` needs to learn (its model, method and the method's settings, memory,
replay, keys, local adaptation and its seed) and nothing of run folders, streams,
checkpoints, progress bars or the command line, so a learner can be built, served or
swept without a run around it. ``RunConfig.learner()`` composes one from a run's keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LearnerConfig:
    seed: int = 0
    device: str = "cpu"  # cpu | cuda | cuda:N | mps | auto (CUDA when present)
    cuda_graph: bool = True  # on a GPU, capture the step once as a CUDA graph and replay it
    bf16: bool = False  # bf16 autocast of the autograd forward pass (CUDA only)
    model: str = "auto"  # auto | mlp | cnn
    hidden: int = 100
    method: str = "der++"  # a built-in name or package.module:Class (see lifelong.learner.methods)
    method_values: dict = field(default_factory=dict)  # the method's settings, by name
    iters: int = 5  # updates per incoming batch
    memory: int = 500
    write_policy: str = "reservoir"
    replay_policy: str = "class-balanced"
    replay_batch: int = 32
    gate: bool = True  # the learned prediction controller (lifelong.learner.gate)
    average_weights: float = 0.995  # decay of the weight average that predicts (0: off)
    key_source: str = "network"
    rekey_every: int = 0
    index: str = "flat"
    refresh_logits: bool = True
    local_adapt: bool = False
    adapt_k: int = 16
    adapt_steps: int = 5
    adapt_lr: float = 0.05
    adapt_l2: float = 0.1


def resolve(values: dict) -> str:
    """The method a run config names. ``auto`` keeps the older flags' meaning: the
    learned rates are La-MAML, ``ace`` ER-ACE, a ``distill`` weight DER++, else plain replay."""
    name = values.get("method", "auto")
    if name != "auto":
        return name
    if values.get("learned_rates"):
        return "lamaml"
    if values.get("ace"):
        return "er-ace"
    return "der++" if values.get("distill", 0) else "er"
