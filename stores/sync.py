"""Keeping the RAM catalog and the FAISS index in step with the database.

On open the saved index is adopted only where it covers this very database; after that,
appends are replayed row by row and anything destructive rebuilds from SQLite.
"""

from __future__ import annotations

import contextlib
import json
import warnings

import numpy as np
from sqlalchemy import Connection

from stores.catalog import Catalog
from stores.errors import (
    ReadOnlyStore,
    StoreError,
)
from stores.folder import DB_NAME, INDEX_NAME
from stores.key_index import IVF_KINDS, Coverage, KeyIndex, id_digest
from stores.mapped_index import IndexFileDamaged
from stores.sqlite import _CATALOG_ROWS, _KEY_ROWS, _KEYS_OF_RAW_ORDERED


class CacheSync:
    """Part of ``EpisodicStore``: keeping its catalog and index in step with SQLite."""

    def _load_index_file(self) -> None:
        """Adopt the saved index only where it covers this very database up to a version it
        has reached: an index ahead of the database (an older database put back), from
        another store, or unreadable is dropped, and the index is rebuilt from SQLite."""
        self._index_from_file = self._index_file_rejected = False
        if self.path is None or not (self.path / INDEX_NAME).exists():
            return
        self._index_file_rejected = True  # until it proves itself
        try:
            saved = KeyIndex.load(self.path / INDEX_NAME, self.spec, mapped=True)
        except StoreError as exc:
            warnings.warn(f"{exc}; rebuilding the index from {DB_NAME}", stacklevel=3)
            return
        cov = saved.coverage
        if cov.version > self.meta["version"] or cov.store_id != self.meta.get("store_id"):
            warnings.warn(
                f"index file {self.path / INDEX_NAME} does not belong to this database "
                f"(it covers version {cov.version}, the database is at "
                f"{self.meta['version']}); rebuilding it from {DB_NAME}",
                stacklevel=3,
            )
            return
        self.index = saved
        self._index_version, self._index_max_id = cov.version, cov.max_id
        self._index_from_file, self._index_file_rejected = True, False
        snapshot, saved.catalog_snapshot = saved.catalog_snapshot, None
        if snapshot is not None and snapshot.shape[0] == len(Catalog.FIELDS):
            # the catalog as of the same version: only rows written since are read below
            self.catalog = Catalog.from_columns(snapshot)
            self._catalog_version = cov.version

    def _catch_up(self) -> None:
        """The open's first ``_sync``: a mapped index file that fails its checks while it
        catches up is replaced by a rebuild, as a file that fails them on open is."""
        try:
            self._sync()
        except IndexFileDamaged as exc:
            self._index_file_failed(exc)

    def settle(self) -> None:
        """Wait until a mapped index file's owned copy is loaded and checked (or, where it
        failed a check, rebuilt). Nothing needs it: a change waits by itself; a benchmark
        that times searches, or a caller that wants the loading thread's CPU back, calls it."""
        self._settle_index(wait=True)

    def _settle_index(self, wait: bool) -> None:
        """Swap in a mapped index file's loaded copy once it is ready (at once with
        ``wait``: before the index changes); see ``stores.mapped_index``."""
        try:
            self.index.settle(wait)
        except IndexFileDamaged as exc:
            self._index_file_failed(exc)

    def _index_file_failed(self, exc: IndexFileDamaged) -> None:
        """A mapped index file failed a check its loading thread made: rebuild catalog and
        index from the database (the truth), and a writer replaces the file."""
        warnings.warn(f"{exc}; rebuilding the index from {DB_NAME}", stacklevel=3)
        self._index_from_file = False
        self._reload_caches()
        if not self.readonly:
            self.index.coverage = Coverage(version=-1)
            self.save_index()

    def _check_loaded_index(self) -> None:
        """After catching up, a loaded index must hold exactly the database's ids (a mapped
        one's loading thread compares them with the file's catalog)."""
        held = self.catalog.ids
        check = self._index_from_file and not self.index.settling
        if check and self.index.id_digest() != (len(held), id_digest(held)):
            warnings.warn(
                f"index file {self.path / INDEX_NAME} disagrees with {DB_NAME}; rebuilding it",
                stacklevel=3,
            )
            self.index, self._index_version = KeyIndex(self.spec), -1
            self._sync()
            self._index_file_rejected = True
        self._index_from_file = False
        if self._index_file_rejected and not self.readonly:  # replace the bad file now
            self.index.coverage = Coverage(version=-1)
            self.save_index()

    def _sync(self, conn: Connection | None = None) -> None:
        """Bring catalog and index up to the database in one read snapshot (``conn``'s open
        transaction, when given).

        Where only appends happened since a cache's version, it reads just the new rows;
        after a delete or re-key it rebuilds that cache from the database.
        """
        with contextlib.nullcontext(conn) if conn is not None else self._tx() as s:
            self.meta = self._read_meta(s)
            version, destructive = self.meta["version"], self.meta["destructive_version"]
            if self._catalog_version == version and self._index_version == version:
                return
            last = -1
            if 0 <= destructive <= self._catalog_version:
                last = int(self.catalog.ids[-1]) if len(self.catalog) else -1
            else:
                self.catalog = Catalog()
            # a million rows: plain tuples from the driver, not Row objects (30x faster here)
            rows = s.exec_driver_sql(_CATALOG_ROWS, (last,)).cursor.fetchall()
            self._append_catalog(np.array(rows, np.int64).reshape(-1, 5))
            start = -1
            if 0 <= destructive <= self._index_version:
                start = self._index_max_id
            else:
                self.index = KeyIndex(self.spec)
                self._train_from_database(s)
            cur = s.exec_driver_sql(_KEY_ROWS, (start,)).cursor
            with self.index.bulk():
                while chunk := cur.fetchmany(50_000):
                    ids = np.fromiter((r[0] for r in chunk), np.int64, len(chunk))
                    keys = np.frombuffer(b"".join(r[1] for r in chunk), np.float32)
                    self.index.add(ids, keys.reshape(len(chunk), self.spec.dim))
                    self._index_max_id = int(ids[-1])
        self._catalog_version = self._index_version = version

    def _train_from_database(self, s: Connection) -> None:
        """Before an IVF index is rebuilt, train it on a sample of the database's keys, so
        the rebuild only adds: it never holds every key as floats (5 GB at 10M, where IVF-PQ
        is chosen to stay within 2 GB). The catalog is already this snapshot's."""
        n = len(self.catalog)
        if self.spec.kind not in IVF_KINDS or n < self.spec.train_min:
            return
        size = min(self.index.training_size(n), n)
        pick = np.sort(np.random.default_rng(0).choice(self.catalog.ids, size, replace=False))
        parts = []
        for chunk in np.array_split(pick, max(1, size // 50_000)):
            rows = s.exec_driver_sql(_KEYS_OF_RAW_ORDERED, (json.dumps(chunk.tolist()),))
            parts.append(b"".join(r[1] for r in rows.cursor.fetchall()))
        keys = np.frombuffer(b"".join(parts), np.float32).reshape(size, self.spec.dim)
        self.index.train(keys, n)

    def rebuild_index(self) -> None:
        """Rebuild the index from the database (an IVF-PQ index grown 4x retrains so)."""
        self._index_version = -1
        self.index = KeyIndex(self.spec)
        self._sync()

    def _reload_caches(self) -> None:
        """Catalog and index read again from the database, the truth."""
        self.catalog, self.index = Catalog(), KeyIndex(self.spec)
        self._catalog_version = self._index_version = -1
        self._sync()

    def _append_catalog(self, rows: np.ndarray) -> None:
        self.catalog.append({f: rows[:, i] for i, f in enumerate(Catalog.FIELDS)})

    def refresh(self) -> None:
        """Readers: catch up with what the writer committed since the last call.

        Every read of a reader calls this; SQLite's ``data_version`` (which moves only when
        another connection commits) answers "nothing new" without a query of the tables or
        a transaction (10 us against 0.6 ms)."""
        seen = self._driver().execute("PRAGMA data_version").fetchone()[0]
        if seen == self._seen_data_version:
            return
        self._seen_data_version = seen  # a commit after this line moves it again
        if self._committed_version() != self._catalog_version:
            self._catch_up()

    def _check_writable(self) -> None:
        if self.readonly:
            raise ReadOnlyStore(f"{self._where()} was opened read-only")

    def _maybe_refresh(self) -> None:
        self._settle_index(wait=False)
        if self.readonly:
            self.refresh()
