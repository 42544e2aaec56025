"""Which device the learner runs on: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``."""

from __future__ import annotations

import torch

from lifelong.errors import ConfigError

CHOICES = "cpu, cuda, cuda:N, mps or auto (CUDA when present, else the CPU)"


def resolve_device(name: str) -> torch.device:
    """The device ``name`` means here; ConfigError in one line when it is unknown or absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device {name!r}: use {CHOICES}") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(
                f"device {name!r}: no CUDA device is present here (torch {torch.__version__}, "
                f"built for CUDA {torch.version.cuda or 'none'}); use --device cpu or auto"
            )
        index = 0 if device.index is None else device.index
        if index >= count:
            raise ConfigError(
                f"device {name!r}: this machine has {count} CUDA device(s), "
                f"cuda:0..cuda:{count - 1}"
            )
        return torch.device("cuda", index)
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"device {name!r}: Apple's MPS is not available here")
        return device
    raise ConfigError(f"unknown device {name!r}: use {CHOICES}")


def learner_device(name: str, bf16: bool = False) -> torch.device:
    """``resolve_device``, and bf16 autocast only where it runs: on a CUDA device."""
    device = resolve_device(name)
    if bf16 and device.type != "cuda":
        raise ConfigError(f"bf16 autocast needs a CUDA device; the learner is on {device}")
    return device
