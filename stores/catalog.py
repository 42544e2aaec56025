"""The RAM catalog: ids and small metadata of every memory, sorted by id.

Sampling, eviction and filters need these columns on every call; reading them from SQLite
each time would put a query on the agent's hot path. The catalog is rebuilt from the
database on open, so it is a cache like the FAISS index, never a second truth.
"""

from __future__ import annotations

import numpy as np

NO_TASK = -1  # a memory written without a task id (task-free streams)


class Catalog:
    """Column arrays (id, label, task, experience, position), kept sorted by id."""

    FIELDS = ("id", "label", "task", "experience", "position")

    def __init__(self) -> None:
        self.cols: dict[str, np.ndarray] = {f: np.empty(0, np.int64) for f in self.FIELDS}
        self._groups: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return int(self.cols["id"].shape[0])

    @property
    def ids(self) -> np.ndarray:
        return self.cols["id"]

    def append(self, rows: dict[str, np.ndarray]) -> None:
        """Add rows whose ids are all larger than any present (ids only grow)."""
        for f in self.FIELDS:
            self.cols[f] = np.concatenate([self.cols[f], np.asarray(rows[f], np.int64)])
        self._groups.clear()

    def remove(self, ids: np.ndarray) -> None:
        keep = ~np.isin(self.cols["id"], ids)
        for f in self.FIELDS:
            self.cols[f] = self.cols[f][keep]
        self._groups.clear()

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Row positions of ids; -1 for ids not present (including the -1 padding ids)."""
        ids = np.asarray(ids, np.int64)
        if not len(self):
            return np.full(ids.shape, -1, np.int64)
        all_ids = self.cols["id"]
        pos = np.minimum(np.searchsorted(all_ids, ids), len(all_ids) - 1)
        return np.where(all_ids[pos] == ids, pos, -1)

    def gather(self, ids: np.ndarray, fields: tuple[str, ...]) -> list[np.ndarray]:
        """Columns ``fields`` for ids, -1 where an id is not present."""
        rows = self.rows_of(ids)
        if not len(self):
            return [rows.copy() for _ in fields]
        safe, missing = np.maximum(rows, 0), rows < 0
        out = []
        for f in fields:
            col = self.cols[f][safe]
            col[missing] = -1
            out.append(col)
        return out

    def groups(self, field: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(values, starts, order): rows grouped by ``field``, cached until the next change."""
        if field not in self._groups:
            col = self.cols[field]
            order = np.argsort(col, kind="stable")
            values, starts = np.unique(col[order], return_index=True)
            self._groups[field] = (values, np.append(starts, len(col)), order)
        return self._groups[field]

    def counts(self, field: str) -> dict[int, int]:
        values, bounds, _ = self.groups(field)
        return {int(v): int(bounds[i + 1] - bounds[i]) for i, v in enumerate(values)}

    def mask(self, *, task=None, label=None, experience=None, position=None) -> np.ndarray:
        """Boolean row mask for equality filters (a value or a list) and a position range."""
        m = np.ones(len(self), bool)
        for field, want in (("task", task), ("label", label), ("experience", experience)):
            if want is None:
                continue
            vals = [NO_TASK if v is None else v for v in np.atleast_1d(np.asarray(want, object))]
            m &= np.isin(self.cols[field], np.asarray(vals, np.int64))
        if position is not None:
            lo, hi = position
            if lo is not None:
                m &= self.cols["position"] >= lo
            if hi is not None:
                m &= self.cols["position"] < hi
        return m
