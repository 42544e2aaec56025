"""Pictures of what the agent remembers: stored examples drawn as images, each with its label,
task, age and replay count. The report's memory page and ``lifelong memory show`` use them.

A stored value is drawn as an image when its shape says it is one ((C, H, W) with one or three
channels, (H, W), or a flat vector of a square size, as MNIST's 784); any other vector is
drawn as a one-row strip, so every store has a picture.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import BinaryIO

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

_PYPLOT = threading.Lock()  # pyplot's figures are global state: one picture at a time


def as_image(value: np.ndarray) -> np.ndarray:
    """An example as something ``imshow`` draws: (H, W) grey, (H, W, 3) colour, or (1, N)."""
    v = np.asarray(value, dtype=np.float32)
    if v.ndim == 3 and v.shape[0] in (1, 3):
        v = v[0] if v.shape[0] == 1 else np.moveaxis(v, 0, -1)
    elif v.ndim == 1 and math.isqrt(len(v)) ** 2 == len(v) and len(v) > 1:
        side = math.isqrt(len(v))
        v = v.reshape(side, side)
    elif v.ndim != 2:
        v = v.reshape(1, -1)
    if v.ndim == 3:  # colour: imshow wants values in [0, 1]
        lo, hi = float(v.min()), float(v.max())
        v = (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)
    return v


def caption(record: dict, newest: int) -> str:
    """What a memory is, in a few words: label, task, age (stream examples since it was
    written) and how often it was replayed."""
    task = f"task {'none' if record.get('task') in (None, -1) else record['task']}"
    age = newest - record["position"] if record.get("position", -1) >= 0 else None
    when = f"age {age}" if age is not None else "no position"
    replayed = f"replayed {record['replay_count']}x"
    return f"#{record['id']} label {record['label']}\n{task}, {when}\n{replayed}"


def pick_per_class(store, per_class: int) -> dict[int, np.ndarray]:
    """Up to ``per_class`` memory ids of each class, spread from its oldest to its newest."""
    cols = store.catalog.cols
    picked = {}
    for label in np.unique(cols["label"]).tolist():
        mine = cols["label"] == label
        ids = cols["id"][mine][np.argsort(cols["position"][mine], kind="stable")]
        take = np.unique(np.linspace(0, len(ids) - 1, min(per_class, len(ids))).round())
        picked[int(label)] = ids[take.astype(int)]
    return picked


def plot_memory_grid(store, path: Path | BinaryIO, per_class: int = 8) -> Path | BinaryIO | None:
    """A row per class, its memories from oldest to newest, as a PNG at ``path`` (a file name
    or a binary file); None for an empty store."""
    if len(store) == 0:
        return None
    with _PYPLOT:
        return _grid(store, path, per_class)


def _grid(store, path, per_class: int):
    picked = pick_per_class(store, per_class)
    newest = int(store.catalog.cols["position"].max())
    rows, cols = len(picked), max(len(v) for v in picked.values())
    fig, axes = plt.subplots(
        rows, cols, figsize=(1.6 * cols, 1.9 * rows), squeeze=False, layout="constrained"
    )
    for ax in axes.flat:
        ax.axis("off")
    for r, ids in enumerate(picked.values()):
        batch = store.fetch(ids)
        records = {rec["id"]: rec for rec in store.records(ids)}
        for c, (i, value) in enumerate(zip(ids, batch.values, strict=True)):
            ax = axes[r, c]
            _draw(ax, as_image(value))
            ax.set_title(caption(records[int(i)], newest), fontsize=6)
    fig.suptitle(
        f"What the agent remembers: {len(store)} memories, {rows} classes "
        f"(a row per class, oldest to newest)",
        fontsize=9,
    )
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return path


def plot_one(value: np.ndarray, record: dict, newest: int, path: Path) -> Path:
    """One memory's stored example (``value``, its ``record``), captioned; ``newest``: the
    latest stream position in its store, which its age is counted from."""
    with _PYPLOT:
        fig, ax = plt.subplots(figsize=(3, 3.4), layout="constrained")
        _draw(ax, as_image(value))
        ax.axis("off")
        ax.set_title(caption(record, newest).replace("\n", ", ", 1), fontsize=8)
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return path


def _draw(ax, image: np.ndarray) -> None:
    """Grey or colour at its own aspect; a one-row strip stretched to the cell."""
    cmap = None if image.ndim == 3 else "gray"
    ax.imshow(image, cmap=cmap, aspect="auto" if image.shape[0] == 1 else "equal")
