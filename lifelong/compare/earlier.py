"""A compare into a folder an earlier compare left: its rows are kept where this one does
not redo them, read as this version writes them (a method since renamed under its present
name, min-ACC and WC-ACC from the matrix where they predate); a folder of another protocol
or not a compare's is refused, never mixed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lifelong import metrics
from lifelong.errors import ConfigError

# names once used: "controller" named both La-MAML's rates and the prediction controller
RENAMED_METHODS = {"ours-controller": "ours-lamaml", "ours-controller-1x": "ours-lamaml-1x"}
REFINED = ("min_acc", "wc_acc")  # continual evaluation's, finer than the matrix's


def earlier_runs(out: Path, protocol: tuple[str, int, int, int]) -> list[dict]:
    """The runs an earlier compare left in ``out``, which a compare of fewer methods into the
    same folder keeps. A folder of another stream, memory, label delay or evaluation
    interval (``protocol``) is refused, not mixed: rows whose min-ACC came from experience
    ends beside rows refined every N updates would not compare."""
    path = out / "results.json"
    if not path.exists():
        return []
    try:
        earlier = json.loads(path.read_text())
    except ValueError:
        return []  # unreadable: this compare's results replace it
    if not isinstance(earlier, dict):
        raise _not_a_compare(path)
    theirs = (
        earlier.get("stream"),
        earlier.get("memory"),
        earlier.get("label_delay", 0),
        earlier.get("eval_every", 0),
    )
    if theirs != protocol:
        raise ConfigError(
            f"{out} holds a compare of {_described(*theirs)}, not "
            f"{_described(*protocol)}; use another --out"
        )
    try:
        return [_as_now(r) for r in earlier.get("runs", [])]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise _not_a_compare(path) from None


def _not_a_compare(path: Path) -> ConfigError:
    return ConfigError(
        f"{path} is not a compare's results (rows with their method, seed and matrix); "
        "use another --out, or move it away"
    )


def _as_now(row: dict) -> dict:
    """An earlier compare's row as this version writes it: its method's present name, and
    the measures the matrix gives that it predates (min-ACC and WC-ACC from its ends)."""
    if isinstance(row["seed"], bool) or not isinstance(row["seed"], int):  # merged by seed
        raise TypeError(f"seed {row['seed']!r} is not an integer")
    row = {**row, "method": RENAMED_METHODS.get(row["method"], row["method"])}
    ends = metrics.summary(np.array(row["matrix"], float), row.get("untrained"))
    return {**{k: ends[k] for k in REFINED}, **row}


def _described(stream_name: str, memory: int, delay: int, every: int) -> str:
    late = f" with labels {delay} batches late" if delay else ""
    evaluated = f" evaluated every {every} updates" if every else " evaluated at experience ends"
    return f"{stream_name} at memory {memory}{late}{evaluated}"
