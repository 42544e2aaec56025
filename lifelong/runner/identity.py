"""A run folder's identity: the config and stream data it was made with."""

from __future__ import annotations

from pathlib import Path

from lifelong.config import ConfigError, RunConfig
from stores.files import write_atomic


def check_identity(cfg: RunConfig, stream_print: str | None, run_dir: Path, saved) -> None:
    """Refuse a folder made by another config or trained on other data; write config.toml.

    The checkpoint carries the config and stream fingerprint it was made with and is the
    authority (config.toml may have been deleted or edited); a folder never checkpointed
    is checked against its config.toml."""
    saved_path = run_dir / "config.toml"
    identity = saved.identity if saved is not None else None
    if identity is not None:
        try:
            made_with = RunConfig.from_dict(identity["config"])
        except ConfigError as exc:
            raise ConfigError(
                f"{run_dir}'s checkpoint holds a config this lifelong cannot read ({exc})"
            ) from None
    elif saved_path.exists():
        made_with = RunConfig.load(saved_path)
    else:
        made_with = None
    if made_with is not None:
        diffs = made_with.differences(cfg)
        if diffs:
            lines = ", ".join(f"{k}: {a!r} (folder) vs {b!r} (now)" for k, (a, b) in diffs.items())
            raise ConfigError(
                f"run folder {run_dir} was made with a different config ({lines}); "
                "leave those flags out to go on as it was made (its config.toml is the "
                "run's), use another --out, or delete the folder to start over"
            )
    if identity is not None and identity.get("stream") != stream_print and stream_print:
        raise ConfigError(
            f"run folder {run_dir} was trained on other data than this stream's "
            f"{cfg.stream!r} (data fingerprint {identity.get('stream')} in the checkpoint, "
            f"{stream_print} now); use another --out, or delete the folder to start over"
        )
    write_atomic(saved_path, cfg.dumps())
