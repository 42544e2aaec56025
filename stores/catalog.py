"""The RAM catalog: ids and small metadata of every memory, sorted by id.

Sampling, eviction and filters need these columns on every call; reading them from SQLite
each time would put a query on the agent's hot path. The catalog is rebuilt from the
database on open, so it is a cache like the FAISS index, never a second truth.
"""

from __future__ import annotations

import numpy as np

from stores.sampling import group_rows

NO_TASK = -1  # a memory written without a task id (task-free streams)


class Catalog:
    """Column arrays (id, label, task, experience, position), kept sorted by id.

    Appends go into buffers that double when full, so a million small appends cost
    amortised O(1) each instead of copying every column every time.
    """

    FIELDS = ("id", "label", "task", "experience", "position")

    def __init__(self) -> None:
        self._buf = np.empty((len(self.FIELDS), 0), np.int64)
        self._n = 0
        self.cols: dict[str, np.ndarray] = {}
        self._groups: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._views()

    @classmethod
    def from_columns(cls, columns: np.ndarray) -> Catalog:
        """A catalog over ``(fields, n)`` int64 columns sorted by id (a saved snapshot; read
        only, as a mapped one is: the first change copies them)."""
        out = cls()
        out._buf, out._n = np.ascontiguousarray(columns, np.int64), columns.shape[1]
        out._views()
        return out

    def columns(self) -> np.ndarray:
        """The ``(fields, n)`` columns, for a snapshot (a view: save it before changing)."""
        return self._buf[:, : self._n]

    def _views(self) -> None:
        self.cols = {f: self._buf[i, : self._n] for i, f in enumerate(self.FIELDS)}
        self._groups.clear()

    def __len__(self) -> int:
        return self._n

    @property
    def ids(self) -> np.ndarray:
        return self.cols["id"]

    def append(self, rows: dict[str, np.ndarray]) -> None:
        """Add rows whose ids are all larger than any present (ids only grow)."""
        new = np.stack([np.asarray(rows[f], np.int64) for f in self.FIELDS])
        m = new.shape[1]
        if not m:  # nothing new (a rebuild of the index alone): a mapped buffer stays as is
            return
        if self._n + m > self._buf.shape[1] or not self._buf.flags.writeable:
            grown = np.empty(
                (len(self.FIELDS), max(2 * self._buf.shape[1], self._n + m, 64)), np.int64
            )
            grown[:, : self._n] = self._buf[:, : self._n]
            self._buf = grown
        self._buf[:, self._n : self._n + m] = new
        self._n += m
        self._views()

    def remove(self, ids: np.ndarray) -> None:
        keep = ~np.isin(self.cols["id"], ids)
        kept = self._buf[:, : self._n][:, keep]
        self._n = kept.shape[1]
        if self._buf.flags.writeable:
            self._buf[:, : self._n] = kept
        else:  # columns mapped read-only from the index file (``from_columns``)
            self._buf = kept
        self._views()

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Row positions of ids; -1 for ids not present (including the -1 padding ids)."""
        ids = np.asarray(ids, np.int64)
        if not self._n:
            return np.full(ids.shape, -1, np.int64)
        all_ids = self.cols["id"]
        pos = np.minimum(np.searchsorted(all_ids, ids), self._n - 1)
        return np.where(all_ids[pos] == ids, pos, -1)

    def gather(self, ids: np.ndarray, fields: tuple[str, ...]) -> list[np.ndarray]:
        """Columns ``fields`` for ids, -1 where an id is not present (on a search's path:
        every column of the few rows in one take, then the fields wanted)."""
        rows = self.rows_of(ids)
        if not self._n:
            return [rows.copy() for _ in fields]
        every = self._buf[:, np.maximum(rows, 0).ravel()]
        picked = every[[self.FIELDS.index(f) for f in fields]].reshape(len(fields), *rows.shape)
        missing = rows < 0
        if missing.any():
            picked[:, missing] = -1
        return list(picked)

    def groups(self, field: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(values, bounds, order): rows grouped by ``field``, cached until the next change."""
        if field not in self._groups:
            self._groups[field] = group_rows(self.cols[field])
        return self._groups[field]

    def counts(self, field: str) -> dict[int, int]:
        values, bounds, _ = self.groups(field)
        return {int(v): int(bounds[i + 1] - bounds[i]) for i, v in enumerate(values)}

    def mask(self, *, task=None, label=None, experience=None, position=None) -> np.ndarray:
        """Boolean row mask for equality filters (a value or a list) and a position range."""
        m = np.ones(self._n, bool)
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
