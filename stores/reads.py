"""Reading memories: fetch by id, k-nearest search with filters, sampling, records, stats."""

from __future__ import annotations

import contextlib
import json

import faiss
import numpy as np

from stores.errors import (
    MemoryNotFound,
    StoreChanged,
    StoreError,
)
from stores.folder import DB_NAME, INDEX_NAME, VALUES_NAME
from stores.results import Batch, SearchResult
from stores.sampling import balanced_rows
from stores.sqlite import _KEYS_OF_RAW, _RECORDS_OF, _VALUES_OF_RAW
from stores.validate import check_where, keys_array
from stores.value_file import MAX_IDS

EXACT_FILTER_LIMIT = 50_000  # filtered ANN searches over fewer candidates are done exactly
SAMPLE_POLICIES = ("uniform", "class-balanced", "task-balanced")


class Reads:
    """Part of ``EpisodicStore``: fetch, search, sample, records and stats."""

    def fetch(self, ids, *, with_values: bool = True) -> Batch:
        """Memories by id, in the order asked; StoreError for ids not in the store."""
        self._maybe_refresh()
        ids = np.asarray(ids, np.int64).reshape(-1)
        rows = self.catalog.rows_of(ids)
        if (rows < 0).any():
            raise MemoryNotFound(f"no memories with ids {ids[rows < 0][:10].tolist()}")
        return self._batch(ids, rows, with_values)

    def _batch(self, ids: np.ndarray, rows: np.ndarray, with_values: bool) -> Batch:
        c = self.catalog.cols
        values = self._values(ids) if with_values else None
        return Batch(
            ids,
            c["label"][rows],
            c["task"][rows],
            c["experience"][rows],
            c["position"][rows],
            values,
        )

    def _values(self, ids: np.ndarray) -> np.ndarray:
        """Values of ids (all stored): from the value file where it vouches for them (a
        draw's reads go to the disk together), the rest from the database in one statement."""
        vf = self.value_file
        if vf is None or not 0 < len(ids) <= MAX_IDS:
            return self._as_values(self._value_rows(ids))
        try:
            rows, found = vf.get(ids)
        except OSError:  # a cache that cannot be read: the database answers
            return self._as_values(self._value_rows(ids))
        if not found.all():
            rows = rows.copy()
            missing = ids[~found]
            rows[~found] = self._value_rows(missing)
            if not (self.readonly or self._in_transaction):  # committed values only
                with contextlib.suppress(OSError):  # unmended: read from the database again
                    vf.put(missing, rows[~found])
        return self._as_values(rows)

    def _as_values(self, rows: np.ndarray) -> np.ndarray:
        """Rows of bytes as the store's values: one copy, writable, like any array."""
        return np.array(rows).view(self.value_dtype).reshape(len(rows), *self.value_shape)

    def _value_rows(self, ids: np.ndarray) -> np.ndarray:
        """Values of ids from the database, as rows of bytes."""
        unique = np.unique(ids)
        got = dict(self._driver().execute(_VALUES_OF_RAW, (json.dumps(unique.tolist()),)))
        if len(got) < len(unique):
            raise StoreChanged("memories vanished while reading; call refresh() and retry")
        flat = np.frombuffer(b"".join(got[int(i)] for i in ids), np.uint8)
        return flat.reshape(len(ids), self.value_nbytes)

    def records(self, ids) -> list[dict]:
        """Every stored field but key and value, for display and export."""
        ids = [int(i) for i in np.atleast_1d(ids)]
        with self._tx() as c:
            got = {r.id: r._asdict() for r in c.execute(_RECORDS_OF, {"ids": json.dumps(ids)})}
        return [got[i] for i in ids if i in got]

    def keys_of(self, ids) -> np.ndarray:
        """The stored key vectors of ids (from the database, the source of truth)."""
        ids = [int(i) for i in np.atleast_1d(ids)]
        got = dict(self._driver().execute(_KEYS_OF_RAW, (json.dumps(ids),)))
        missing = [i for i in ids if i not in got]
        if missing:
            raise MemoryNotFound(f"no memories with ids {missing[:10]}")
        return np.frombuffer(b"".join(got[i] for i in ids), np.float32).reshape(len(ids), -1)

    def search(self, queries, k: int = 10, *, where: dict | None = None) -> SearchResult:
        """k nearest memories of each query key, optionally filtered by task, label,
        experience (a value or a list) or position range (start, stop)."""
        self._maybe_refresh()
        q = keys_array(queries, self.spec.dim, "queries")
        if k <= 0:
            raise StoreError(f"k must be positive, got {k}")
        where = check_where(where)
        allowed = self.catalog.ids[self.catalog.mask(**where)] if where else None
        if allowed is not None and self.spec.kind != "flat" and len(allowed) <= EXACT_FILTER_LIMIT:
            dist, ids = self._exact_search(q, k, allowed)
        elif allowed is not None and len(allowed) == 0:
            dist = np.full((len(q), k), np.inf, np.float32)
            ids = np.full((len(q), k), -1, np.int64)
        elif self.spec.kind == "ivfpq" and self.index.trained_ivf and self.spec.refine > 1:
            _, candidates = self.index.search(q, k * self.spec.refine, allowed)
            dist, ids = self._rerank(q, candidates, k)
        else:
            dist, ids = self.index.search(q, k, allowed)
        labels, tasks, exps, pos = self.catalog.gather(
            ids, ("label", "task", "experience", "position")
        )
        return SearchResult(ids, dist, labels, tasks, exps, pos)

    def _rerank(self, q: np.ndarray, candidates: np.ndarray, k: int):
        """The k best of each query's candidates by their stored keys (PQ codes only
        approximate a key: ranking refine x k candidates exactly brings recall back)."""
        live = np.unique(candidates[candidates >= 0])
        keys = self.keys_of(live) if len(live) else np.empty((0, self.spec.dim), np.float32)
        vecs = keys[np.searchsorted(live, np.maximum(candidates, 0))] if len(live) else None
        if vecs is None:
            score = np.full(candidates.shape, np.inf, np.float32)
        elif self.spec.metric == "l2":
            score = ((vecs - q[:, None, :]) ** 2).sum(-1)
        else:
            score = -np.einsum("qcd,qd->qc", vecs, q)  # best first, as for l2
        score[candidates < 0] = np.inf
        order = np.argsort(score, axis=1, kind="stable")[:, :k]
        ids = np.take_along_axis(candidates, order, 1)
        best = np.take_along_axis(score, order, 1).astype(np.float32)
        dist = best if self.spec.metric == "l2" else -best  # FAISS's sign for inner product
        return dist, ids  # FAISS pads candidates to refine x k columns: always k here

    def _exact_search(self, q: np.ndarray, k: int, allowed: np.ndarray):
        """Exact search over a filtered subset, whose keys are read from the database."""
        keys = self.keys_of(allowed) if len(allowed) else np.empty((0, self.spec.dim), np.float32)
        flat = faiss.IndexFlat(self.spec.dim, self.spec.faiss_metric)
        flat.add(keys)
        dist, rows = flat.search(q, k)
        return dist, np.where(rows >= 0, allowed[np.maximum(rows, 0)], -1)

    def sample(
        self,
        n: int,
        policy: str = "uniform",
        *,
        rng: np.random.Generator | None = None,
        where: dict | None = None,
        with_values: bool = True,
    ) -> Batch:
        """Up to n distinct memories: uniform, or balanced over classes or tasks."""
        self._maybe_refresh()
        if policy not in SAMPLE_POLICIES:
            raise StoreError(
                f"unknown sampling policy {policy!r}; expected one of {SAMPLE_POLICIES}"
            )
        rng = rng if rng is not None else np.random.default_rng()
        where = check_where(where)
        pool = np.flatnonzero(self.catalog.mask(**where)) if where else None
        size = len(self.catalog) if pool is None else len(pool)
        if size == 0 or n <= 0:
            rows = np.empty(0, np.int64)
        elif policy == "uniform" or pool is not None:
            rows = rng.choice(size, min(n, size), replace=False)
            rows = rows if pool is None else pool[rows]
        else:
            rows = self._balanced_rows(n, "label" if policy == "class-balanced" else "task", rng)
        return self._batch(self.catalog.ids[rows], rows, with_values)

    def _balanced_rows(self, n: int, field: str, rng: np.random.Generator) -> np.ndarray:
        _, bounds, order = self.catalog.groups(field)
        return balanced_rows(bounds, order, n, rng)

    def stats(self) -> dict:
        """Counts, settings and file sizes, JSON-able."""
        self._maybe_refresh()
        files = {}
        if self.path is not None:
            for name in (DB_NAME, DB_NAME + "-wal", INDEX_NAME, VALUES_NAME):
                p = self.path / name
                files[name] = p.stat().st_size if p.exists() else 0
        return {
            "path": self._where(),
            "memories": len(self.catalog),
            "capacity": self.capacity,
            "eviction": self.meta["eviction"],
            "seen": self.meta["seen"],
            "version": self.meta["version"],
            "key_dim": self.spec.dim,
            "metric": self.spec.metric,
            "index": self.spec.kind,
            "index_entries": self.index.ntotal,
            "value_shape": list(self.value_shape),
            "value_dtype": self.value_dtype.str,
            "labels": self.catalog.counts("label"),
            # memories written without a task id count under "none", as they are shown
            "tasks": {
                ("none" if t == -1 else t): n for t, n in self.catalog.counts("task").items()
            },
            "files_bytes": files,
            # reads of a few values since open: served by the value file, or by the database
            "value_reads": None
            if self.value_file is None
            else {"file": self.value_file.hits, "database": self.value_file.misses},
        }
