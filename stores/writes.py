"""Writing memories: batches under the eviction policy, deletes, re-keys, replay counts,
and transactions that make several of them one commit."""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Self

import numpy as np
from sqlalchemy import Connection

from stores import eviction
from stores.errors import (
    MemoryNotFound,
    StoreError,
)
from stores.folder import VALUES_NAME
from stores.results import WriteResult
from stores.sqlite import (
    _COUNT_REPLAYS,
    _DELETE_IDS,
    _DELETE_PAYLOADS,
    _INSERT_PAYLOADS,
    _INSERT_ROWS,
    _UPDATE_KEY,
)
from stores.validate import int_column, keys_array, values_array


class Writes:
    """Part of ``EpisodicStore``: writes, deletes, re-keys, replay counts, transactions."""

    @contextmanager
    def transaction(self) -> Iterator[Self]:
        """Several writes (write, delete, rekey, record_replay) as one transaction: all land
        or none, with one commit instead of one each. If any fails, the database rolls back
        and the store's catalog and index are rebuilt from it."""
        self._check_writable()
        self._settle_index(wait=True)  # mapped index lists cannot change
        if self._in_transaction:  # nested: part of the outer one
            yield self
            return
        self._in_transaction = True
        self._values_to_file = []
        try:
            with self._conn.begin():
                yield self
        except BaseException:
            self._in_transaction = False
            self._reload_caches()
            raise
        finally:
            self._in_transaction = False
            pending, self._values_to_file = self._values_to_file, []
        for ids, values in pending:  # committed: now the file may vouch for them
            self._values_into_file(ids, values)

    def write(
        self,
        keys,
        values,
        labels,
        *,
        tasks=None,
        experiences=None,
        positions=None,
        evict=None,
        stream_seen: int | None = None,
    ) -> WriteResult:
        """Write a batch in one transaction; with a capacity, the eviction policy decides what
        stays. Everything is validated before anything is written.

        ``evict`` deletes those memories in the same transaction, before the policy plans, and
        ``stream_seen`` records how many stream examples were offered so far: both for a
        caller that runs its own write policy (the agent's RAM memory) and writes what it kept.
        """
        self._check_writable()
        self._settle_index(wait=True)  # mapped index lists cannot change
        evict = self._existing_ids(evict) if evict is not None else np.empty(0, np.int64)
        keys = keys_array(keys, self.spec.dim)
        n = keys.shape[0]
        vals = values_array(values, n, self.value_shape, self.value_dtype)
        labels = int_column(labels, n, "labels", allow_none=False)
        tasks = int_column(tasks, n, "tasks", allow_none=True)
        exps = int_column(experiences, n, "experiences", allow_none=True)
        seen = self.meta["seen"]
        if stream_seen is not None and stream_seen < seen:
            raise StoreError(f"stream_seen must not go back: {stream_seen} < {seen}")
        pos = (
            np.arange(seen, seen + n, dtype=np.int64)
            if positions is None
            else int_column(positions, n, "positions", allow_none=False)
        )
        rng = np.random.default_rng()
        rng.bit_generator.state = self.meta["rng_state"]
        plan = self._plan(n, labels, seen, rng, evict)
        keep = plan.keep_new
        ids = np.arange(self.meta["next_id"], self.meta["next_id"] + len(keep), dtype=np.int64)
        changed = len(keep) > 0 or len(plan.evict) > 0
        version = self.meta["version"] + (1 if changed else 0)
        updates = {
            "seen": plan.seen if stream_seen is None else int(stream_seen),
            "rng_state": rng.bit_generator.state,
            "version": version,
            "next_id": int(self.meta["next_id"] + len(keep)),
        }
        if len(plan.evict):
            updates["destructive_version"] = version
        kept_keys = keys[keep]
        join_add = self.index.add_beside(ids, kept_keys)  # None: added after the commit
        try:
            with self._tx() as c:
                if len(plan.evict):
                    self._delete_rows(c, plan.evict)
                self._insert_rows(c, ids, keep, keys, vals, labels, tasks, exps, pos)
                self._set_meta(c, **updates)
        except BaseException:
            if join_add is not None:
                self._undo_add(join_add, ids)
            raise
        self.meta.update(updates)
        if self._in_transaction:
            self._values_to_file.append((ids, vals[keep]))
        else:
            self._values_into_file(ids, vals[keep])
        if join_add is not None:
            try:
                join_add()
            except Exception:  # the rows are committed: catalog and index come from them
                self._reload_caches()
                return WriteResult(ids, keep, plan.evict)
        added_keys = None if join_add is not None else kept_keys
        self._apply_locally(
            plan.evict, ids, added_keys, labels[keep], tasks[keep], exps[keep], pos[keep], version
        )
        return WriteResult(ids, keep, plan.evict)

    @staticmethod
    def _insert_rows(c: Connection, ids, keep, keys, vals, labels, tasks, exps, pos) -> None:
        """The hot path: plain executemany, no per-row ORM bookkeeping."""
        if not len(ids):
            return
        now = time.time()
        rows = [
            (i, keys[k].tobytes(), lab, None if t < 0 else t, None if e < 0 else e, p, now)
            for i, k, lab, t, e, p in zip(
                ids.tolist(),
                keep.tolist(),
                labels[keep].tolist(),
                tasks[keep].tolist(),
                exps[keep].tolist(),
                pos[keep].tolist(),
                strict=True,
            )
        ]
        c.exec_driver_sql(_INSERT_ROWS, rows)
        c.exec_driver_sql(
            _INSERT_PAYLOADS, [(i, vals[k].tobytes()) for i, k in zip(ids.tolist(), keep.tolist())]
        )

    def _values_into_file(self, ids: np.ndarray, values: np.ndarray) -> None:
        """Committed values into the value file. Never before the commit: a write that
        rolls back gives its ids again, and a slot must never vouch for a value that was
        not committed. A kill before this line leaves slots that read as misses."""
        if self.value_file is None:
            return
        try:
            self.value_file.put(ids, values)
        except OSError as exc:  # the write landed; a slot not written is a miss, not a lie
            warnings.warn(
                f"{self._where()}: values not copied into {VALUES_NAME} ({exc.strerror}); "
                "they are read from the database",
                stacklevel=3,
            )

    def _undo_add(self, join_add, ids: np.ndarray) -> None:
        """The commit failed: wait for the add beside it and take its keys out again."""
        with contextlib.suppress(Exception):  # the commit's error is the one to raise
            join_add()
        self.index.remove(ids)

    def _plan(self, n: int, labels: np.ndarray, seen: int, rng, evict: np.ndarray):
        """The eviction policy's plan for n new items, after ``evict`` leaves."""
        ids, rows = self.catalog.ids, None
        if len(evict):
            rows = np.flatnonzero(~np.isin(ids, evict))
            ids = ids[rows]
        cap = self.capacity
        if cap is None:
            plan = eviction.Plan(np.arange(n, dtype=np.int64), np.empty(0, np.int64), seen + n)
        elif self.meta["eviction"] == "reservoir":
            plan = eviction.plan_reservoir(ids, n, seen, cap, rng)
        else:
            held = self.catalog.cols["label"] if rows is None else self.catalog.cols["label"][rows]
            plan = eviction.plan_class_balanced(ids, held, labels, seen, cap, rng)
        plan.evict = np.union1d(plan.evict, evict)
        return plan

    def _apply_locally(self, evicted, ids, keys, labels, tasks, exps, pos, version) -> None:
        """Mirror a committed change into the catalog and index, so no re-read is needed."""
        if len(evicted):
            self.catalog.remove(evicted)
            self.index.remove(evicted)
            if self.value_file is not None:
                self.value_file.forget(evicted)
        if len(ids):
            self._append_catalog(np.stack([ids, labels, tasks, exps, pos], axis=1))
            if keys is not None:  # None: the write added them beside its commit
                self.index.add(ids, keys)
            self._index_max_id = int(ids[-1])
        self._catalog_version = self._index_version = version
        if self.index.needs_rebuild and not self._in_transaction:
            self.rebuild_index()
        grown = len(self.catalog) - self._saved_rows > max(20_000, self._saved_rows)
        if grown and not self._in_transaction:  # never save an index ahead of a commit
            self.save_index()

    def delete(self, ids) -> None:
        """Delete memories by id from the database and the index together."""
        self._check_writable()
        self._settle_index(wait=True)  # mapped index lists cannot change
        ids = self._existing_ids(ids)
        version = self.meta["version"] + 1
        with self._tx() as c:
            self._delete_rows(c, ids)
            self._set_meta(c, version=version, destructive_version=version)
        self.meta.update(version=version, destructive_version=version)
        empty = np.empty(0, np.int64)
        self._apply_locally(ids, empty, empty, empty, empty, empty, empty, version)

    @staticmethod
    def _delete_rows(conn: Connection, ids: np.ndarray) -> None:
        bound = {"ids": json.dumps(ids.tolist())}
        conn.execute(_DELETE_IDS, bound)
        conn.execute(_DELETE_PAYLOADS, bound)

    def _existing_ids(self, ids) -> np.ndarray:
        """``ids`` as a sorted unique array; StoreError naming any that are not stored."""
        ids = np.unique(int_column(ids, len(np.atleast_1d(ids)), "ids", allow_none=False))
        missing = ids[self.catalog.rows_of(ids) < 0]
        if len(missing):
            raise MemoryNotFound(f"no memories with ids {missing[:10].tolist()}")
        return ids

    def rekey(self, ids, keys) -> None:
        """Replace the keys of many memories at once (the encoder drifted)."""
        self._check_writable()
        self._settle_index(wait=True)  # mapped index lists cannot change
        ids = int_column(ids, len(np.atleast_1d(ids)), "ids", allow_none=False)
        keys = keys_array(keys, self.spec.dim)
        if len(ids) != len(keys):
            raise StoreError(f"rekey: {len(ids)} ids but {len(keys)} keys")
        if len(np.unique(ids)) != len(ids):
            raise StoreError("rekey: ids must be unique")
        missing = ids[self.catalog.rows_of(ids) < 0]
        if len(missing):
            raise MemoryNotFound(f"no memories with ids {missing[:10].tolist()}")
        version = self.meta["version"] + 1
        with self._tx() as c:
            c.exec_driver_sql(
                _UPDATE_KEY, [(k.tobytes(), i) for i, k in zip(ids.tolist(), keys, strict=True)]
            )
            self._set_meta(c, version=version, destructive_version=version)
        self.meta.update(version=version, destructive_version=version)
        if self.spec.kind == "hnsw":  # HNSW cannot replace a vector: rebuild from the truth
            self._index_version = -1
            self._sync()
        else:
            self.index.remove(ids)
            self.index.add(ids, keys)
            self._catalog_version = self._index_version = version

    def record_replay(self, ids, losses, counts=None) -> None:
        """Count replays of memories and remember each one's latest loss: an id listed twice
        counts twice, or ``counts[i]`` times each with ``counts`` given."""
        self._check_writable()
        ids = np.asarray(ids, np.int64).reshape(-1)
        if len(ids) == 0:
            return
        losses = np.full(len(ids), np.nan) if losses is None else np.asarray(losses, float)
        counts = np.ones(len(ids), np.int64) if counts is None else np.asarray(counts, np.int64)
        if losses.shape != ids.shape or counts.shape != ids.shape:
            raise StoreError(
                f"record_replay: {len(ids)} ids, {losses.size} losses and {counts.size} counts"
            )
        # one row per memory: total count, and the loss listed last
        order = np.arange(len(ids))[::-1]
        unique, last = np.unique(ids[order], return_index=True)
        totals = np.bincount(np.searchsorted(unique, ids), counts, len(unique)).astype(np.int64)
        latest = losses[order[last]]
        with self._tx() as c:
            c.exec_driver_sql(
                _COUNT_REPLAYS,
                [
                    (n, None if np.isnan(v) else float(v), i)
                    for n, v, i in zip(totals.tolist(), latest.tolist(), unique.tolist())
                ],
            )
