"""Follow mode: experiences arrive as ``.npz`` files in a folder, taken in name order.

Each file holds ``x``, ``y``, ``x_test`` and ``y_test`` (and optionally ``task_id``). The agent
waits for the next file until it is stopped, so it can run for as long as tasks keep coming.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from streams import Experience, StreamError
from streams.validate import as_features, as_labels, check_pair

REQUIRED = ("x", "y", "x_test", "y_test")


class FolderStream:
    """Experience i is the i-th ``.npz`` file by name; ``get`` blocks until it exists."""

    def __init__(
        self,
        folder: str | Path,
        n_classes: int,
        poll_seconds: float = 1.0,
        max_experiences: int | None = None,
        idle_timeout: float | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise StreamError(f"follow folder {self.folder} does not exist")
        self.n_classes = n_classes
        self.poll = poll_seconds
        self.max_experiences = max_experiences
        self.idle_timeout = idle_timeout
        self.should_stop = should_stop
        self.loaded: list[Experience] = []
        self.scenario = "class"
        self.name = f"follow:{self.folder}"

    def files(self) -> list[Path]:
        return sorted(self.folder.glob("*.npz"))

    def get(self, i: int) -> Experience | None:
        """The i-th experience, waiting for its file; None when stopped or idle too long."""
        if self.max_experiences is not None and i >= self.max_experiences:
            return None
        waited = 0.0
        while True:
            files = self.files()
            if len(files) > i:
                break
            if self.should_stop() or (
                self.idle_timeout is not None and waited >= self.idle_timeout
            ):
                return None
            time.sleep(self.poll)
            waited += self.poll
        while len(self.loaded) <= i:
            self.loaded.append(self._load(files[len(self.loaded)], len(self.loaded)))
        return self.loaded[i]

    def known(self) -> list[Experience]:
        return list(self.loaded)

    def input_shape(self) -> tuple[int, ...] | None:
        first = self.get(0)
        return None if first is None else tuple(first.x_train.shape[1:])

    def _load(self, path: Path, i: int) -> Experience:
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [k for k in REQUIRED if k not in data.files]
                if missing:
                    raise StreamError(
                        f"{path.name}: missing array(s) {missing}; "
                        f"a task file needs {list(REQUIRED)}"
                    )
                arrays = {k: data[k] for k in REQUIRED}
                task = _task_id(data["task_id"], path.name) if "task_id" in data.files else 0
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            if isinstance(exc, StreamError):
                raise
            raise StreamError(
                f"{path.name}: not a readable .npz file ({type(exc).__name__}: {exc}); write "
                "task files under a temporary name and rename them when complete"
            ) from None
        what = path.name
        x = as_features(arrays["x"], f"{what} x")
        y = as_labels(arrays["y"], f"{what} y", self.n_classes)
        xt = as_features(arrays["x_test"], f"{what} x_test")
        yt = as_labels(arrays["y_test"], f"{what} y_test", self.n_classes)
        check_pair(x, y, f"{what} train")
        check_pair(xt, yt, f"{what} test")
        if xt.shape[1:] != x.shape[1:]:
            raise StreamError(
                f"{what}: x_test examples have shape {tuple(xt.shape[1:])}, "
                f"x's have {tuple(x.shape[1:])}"
            )
        if self.loaded and x.shape[1:] != self.loaded[0].x_train.shape[1:]:
            raise StreamError(
                f"{what}: examples have shape {tuple(x.shape[1:])}, the first task file's "
                f"have {tuple(self.loaded[0].x_train.shape[1:])}"
            )
        if len(yt) == 0:
            raise StreamError(f"{what} has no test data")
        return Experience(i, x, y, xt, yt, task, tuple(sorted(set(y.tolist()))))


def _task_id(value: np.ndarray, what: str) -> int:
    """A task file's ``task_id``: one non-negative integer."""
    if value.shape != () or value.dtype.kind not in "iu" or int(value) < 0:
        raise StreamError(
            f"{what}: task_id must be one integer >= 0, got {value.dtype} of shape {value.shape}"
        )
    return int(value)
