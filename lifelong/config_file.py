"""How a run config is laid out in TOML: the sections keys are written in, the keys renamed
since (read under their new names), and the TOML text of a value. ``RunConfig`` (config.py)
reads and writes through these; they know nothing of what the keys mean."""

from __future__ import annotations

import warnings

from lifelong.errors import ConfigError

# the TOML file's sections: what a run is, who learns, and how the method updates
SECTIONS = {
    "run": (
        "stream",
        "experiences",
        "seed",
        "follow",
        "n_classes",
        "batch_size",
        "shuffle",
        "real_time",
        "stream_rate",
        "wall_clock",
        "label_delay",
        "fit_compute",
        "near_future",
        "eval_every",
        "checkpoint_every",
        "checkpoint_seconds",
        "progress",
        "tensorboard",
        "threads",
    ),
    "learner": (
        "device",
        "cuda_graph",
        "bf16",
        "method",
        "model",
        "hidden",
        "iters",
        "memory",
        "write_policy",
        "replay_policy",
        "replay_batch",
        "gate",
        "average_weights",
        "key_source",
        "rekey_every",
        "index",
        "refresh_logits",
        "local_adapt",
        "adapt_k",
        "adapt_steps",
        "adapt_lr",
        "adapt_l2",
    ),
    "method": (
        "learned_rates",
        "lr",
        "alpha_init",
        "alpha_lr",
        "inner_steps",
        "second_order",
        "grad_clip",
        "ace",
        "distill",
    ),
}


# keys renamed since, read under their new names (a run folder's config.toml keeps the name
# it was written with): "controller" named two things, La-MAML's rates and the gate
RENAMED_KEYS = {"controller": "learned_rates"}


def _renamed(data: dict) -> dict:
    """``data`` with renamed keys under their new names, saying so once per key."""
    for old, new in RENAMED_KEYS.items():
        if old in data:
            if new in data and data[new] != data[old]:
                raise ConfigError(f"config keys {old!r} (the old name) and {new!r} disagree")
            warnings.warn(
                f"config key {old!r} is now {new!r} (read as {new})", FutureWarning, stacklevel=3
            )
            data[new] = data.pop(old)
    return data


def _flatten(data: dict) -> dict:
    """Sectioned TOML to flat keys, refusing a key in the wrong section."""
    flat: dict = {}
    unknown_sections = sorted(set(data) - set(SECTIONS))
    if unknown_sections:
        raise ConfigError(f"unknown config section(s) or key(s) {unknown_sections}")
    for section, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(f"[{section}] must be a table of keys")
        for key, value in values.items():
            if key in SECTIONS[section] or key in RENAMED_KEYS:
                flat[key] = value
            elif section == "method":
                flat.setdefault("method_options", {})[key] = value
            else:
                home = [s for s, keys in SECTIONS.items() if key in keys]
                where = f"; it belongs in [{home[0]}]" if home else ""
                raise ConfigError(f"unknown key {key!r} in [{section}]{where}")
    return flat


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
