"""Looking after a store: verify, reindex, the index file, snapshots, restore, export."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

import numpy as np
from sqlalchemy import Connection, select

from stores.errors import (
    StoreError,
)
from stores.files import fsync_path, temp_file
from stores.folder import (
    DB_NAME,
    INDEX_NAME,
    LOCK_NAME,
    VALUES_NAME,
    release_lock,
    take_writer_lock,
)
from stores.key_index import Coverage, IndexSpec, KeyIndex
from stores.schema import Memory, Meta
from stores.sqlite import (
    _KEYS_OF,
    _TABLES,
    _VALUES_OF_RAW,
    _missing_tables,
    check_snapshot,
    write_snapshot,
)
from stores.value_file import MAX_IDS


class Maintenance:
    """Part of ``EpisodicStore``: verify, reindex, the index file, snapshots, export."""

    def verify(self, sample: int = 1000) -> dict:
        """Check the database, the RAM index and the saved index file agree; never mutates
        the files and never raises: what cannot be read is reported as a problem.

        Everything is read in one read transaction (one snapshot of the database), and a
        reader's catalog and index are brought to that same snapshot first, so a writer
        committing meanwhile causes no false differences."""
        self._settle_index(wait=True)  # the copy it compares: loaded and checked
        problems: list[str] = []
        counts = {"memories": 0, "index_entries": 0}
        db_ids = None
        try:
            with self._tx() as s:
                db_ids = self._verify_in(s, problems, counts, sample)
        except Exception as exc:  # a malformed page, a missing table, a vanished file
            problems.append(f"database unreadable: {getattr(exc, 'orig', None) or exc}")
        try:
            file_state, problem = self._index_file_state(db_ids)
        except Exception as exc:
            file_state, problem = "unreadable", f"index file unreadable: {exc}"
        if problem and db_ids is not None:
            problems.append(problem)
        return {"ok": not problems, "problems": problems, **counts, "index_file": file_state}

    def _verify_in(
        self, s: Connection, problems: list[str], counts: dict, sample: int
    ) -> np.ndarray | None:
        """The checks inside verify's one read transaction; the database's ids, or None."""
        check = s.exec_driver_sql("PRAGMA quick_check").scalar()
        if check != "ok":
            problems.append(f"database integrity: {check}")
            return None
        missing = _missing_tables(s.exec_driver_sql(_TABLES).scalars())
        if missing:
            problems.append(f"table(s) missing from the database: {missing}")
            return None
        if self.readonly:
            self._sync(s)
        db_ids = np.array(s.scalars(select(Memory.id).order_by(Memory.id)).all(), np.int64)
        counts["memories"] = len(db_ids)
        value_ids = np.array(
            s.exec_driver_sql("SELECT id FROM payloads ORDER BY id").scalars().all(), np.int64
        )
        if not np.array_equal(db_ids, value_ids):
            lost = np.setdiff1d(db_ids, value_ids)[:10].tolist()
            extra = np.setdiff1d(value_ids, db_ids)[:10].tolist()
            problems.append(
                f"payloads missing for memories {lost}; payloads without a memory {extra}"
            )
        width = self.value_nbytes
        bad = s.exec_driver_sql(
            "SELECT count(*) FROM payloads WHERE length(value) != ?", (width,)
        ).scalar()
        if bad:
            problems.append(f"{bad} payload(s) are not {width} bytes long")
        index_ids = self.index.ids()
        counts["index_entries"] = len(index_ids)
        if not np.array_equal(db_ids, index_ids):
            extra = np.setdiff1d(index_ids, db_ids)[:10].tolist()
            lost = np.setdiff1d(db_ids, index_ids)[:10].tolist()
            problems.append(
                f"index and database differ: in index only {extra}, in database only {lost}"
            )
        if not np.array_equal(db_ids, self.catalog.ids):
            problems.append("catalog and database ids differ")
        if len(db_ids) and not problems:
            pick = np.random.default_rng(0).choice(db_ids, min(sample, len(db_ids)), replace=False)
            keys = dict(s.execute(_KEYS_OF, {"ids": json.dumps(pick.tolist())}).all())
            stored = np.frombuffer(b"".join(keys[int(i)] for i in pick), np.float32)
            stored = self.index.as_stored(stored.reshape(len(pick), -1))
            if not np.allclose(self.index.reconstruct(pick), stored):
                problems.append("index keys differ from database keys")
            self._verify_value_file(s, pick[:MAX_IDS], problems)
        return db_ids

    def _verify_value_file(self, s: Connection, ids: np.ndarray, problems: list[str]) -> None:
        """Values the file vouches for must be the database's (a slot it cannot vouch for is
        only a cache miss)."""
        if self.value_file is None:
            return
        try:
            rows, found = self.value_file.get(ids)
        except OSError as exc:
            problems.append(f"{VALUES_NAME} unreadable ({exc.strerror}); values come from SQLite")
            return
        got = dict(s.exec_driver_sql(_VALUES_OF_RAW, (json.dumps(ids.tolist()),)).all())
        wrong = [int(i) for i, row in zip(ids[found], rows[found]) if got[int(i)] != row.tobytes()]
        if wrong:
            problems.append(f"{VALUES_NAME} holds other values than the database for {wrong[:10]}")

    def _index_file_state(self, db_ids: np.ndarray | None = None) -> tuple[str, str | None]:
        """(what the saved index file is, a problem with it or None), against the database
        as of ``db_ids`` (this verify's snapshot). A file ahead of that snapshot is a problem
        only when no writer is live: beside one it is just newer than this read."""
        if self.path is None:
            return "none (in memory)", None
        if not (self.path / INDEX_NAME).exists():
            return "missing", None
        try:
            saved = KeyIndex.load(self.path / INDEX_NAME, self.spec)
        except StoreError as exc:
            state = f"unreadable: {exc}"
            return state, state + " (rebuilt from the database on open; reindex rewrites it)"
        cov = saved.coverage
        if cov.store_id != self.meta.get("store_id"):
            return "another store's", "index file belongs to another store (reindex rewrites it)"
        behind = self.meta["version"] - cov.version
        if behind < 0:
            if self._writer_is_live() or cov.version <= self._committed_version():
                return "newer than this read (a writer committed since)", None
            return f"{-behind} versions ahead of the database", (
                f"index file is {-behind} versions ahead of the database (an older database "
                "put back?); it is rebuilt on open, and reindex rewrites it"
            )
        file_ids = saved.ids()
        if behind == 0 and db_ids is not None and not np.array_equal(file_ids, db_ids):
            extra = np.setdiff1d(file_ids, db_ids)[:10].tolist()
            lost = np.setdiff1d(db_ids, file_ids)[:10].tolist()
            return "current but different", (
                f"index file and database differ at the same version: in index file only "
                f"{extra}, in database only {lost} (rebuilt on open; reindex rewrites it)"
            )
        return ("current" if behind == 0 else f"{behind} versions behind (caught up on open)"), None

    def _committed_version(self) -> int:
        """The database's data version now, in a fresh read (not this verify's snapshot)."""
        with self._tx() as s:
            return json.loads(s.scalar(select(Meta.value).where(Meta.name == "version")))

    def _writer_is_live(self) -> bool:
        if self._lock_fd is not None:
            return True
        try:
            fd = os.open(self.path / LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def reindex(self, index: str | None = None, **options) -> None:
        """Rebuild the index from the database and save it, optionally as another kind
        (``index="hnsw"``, ``nprobe=32``, ...); the new choice is recorded in the store."""
        self._check_writable()
        if index is not None or options:
            spec = IndexSpec(**{**self.spec.__dict__, **options, "kind": index or self.spec.kind})
            with self._tx() as c:
                self._set_meta(c, index=spec.__dict__)
            self.spec = spec
            self.meta["index"] = spec.__dict__
        self.rebuild_index()
        self.index.coverage = Coverage(version=-1)  # force the save
        self.save_index()

    def save_index(self) -> None:
        """Save the index file if it is behind the database (the database is always committed)."""
        if self.readonly or self.path is None:
            return
        current = self.index.coverage.version == self.meta["version"]
        if current and (self.path / INDEX_NAME).exists():
            return
        max_id = int(self.catalog.ids[-1]) if len(self.catalog) else -1
        coverage = Coverage(self.meta["version"], max_id, store_id=self.meta.get("store_id"))
        self.index.save(self.path / INDEX_NAME, coverage, self.catalog.columns())
        self._saved_rows = len(self.catalog)

    def snapshot(self, dest: str | os.PathLike | None = None):
        """A consistent copy of the database (SQLite's online backup): written to ``dest``
        (see ``write_snapshot``), or without ``dest`` returned as a SQLite connection, usable
        from any thread, that ``write_snapshot`` copies later (the checkpoint writer does
        that on its own thread while training goes on).

        For a store on disk that connection is a reader holding the database as it is now in
        an open read transaction (WAL keeps that version for it while the store writes on),
        so nothing is copied until the writer thread copies it once, straight to its file;
        an in-RAM store is copied into RAM here."""
        import sqlite3

        if self.path is not None:
            if self._in_transaction:
                raise StoreError("snapshot() inside transaction(): the copy would miss its writes")
            reader = sqlite3.connect(
                self.path / DB_NAME, check_same_thread=False, isolation_level=None
            )
            reader.execute("PRAGMA busy_timeout=10000")
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM meta").fetchall()  # the read starts here
            if dest is None:
                return reader
            try:
                write_snapshot(reader, dest)
            finally:
                reader.close()
            return None
        with self._tx() as c:
            source = c.connection.driver_connection
            if dest is not None:
                write_snapshot(source, dest)
                return None
            copy = sqlite3.connect(":memory:", check_same_thread=False)
            source.backup(copy)
        return copy

    @staticmethod
    def restore(folder: str | os.PathLike, snapshot: str | os.PathLike) -> None:
        """Make ``folder`` hold exactly the store in ``snapshot`` (its index is rebuilt on open).

        The snapshot is checked first (``check_snapshot``) and copied to a fresh temporary
        file beside the database, under the store's writer lock; only then are the live
        files replaced. A damaged snapshot raises StoreCorrupt with the live store untouched.
        """
        folder = Path(folder)
        check_snapshot(snapshot)
        folder.mkdir(parents=True, exist_ok=True)
        lock_fd = take_writer_lock(folder)
        try:
            with temp_file(folder / DB_NAME) as (f, tmp):
                with open(snapshot, "rb") as src:
                    shutil.copyfileobj(src, f)
                f.flush()
                os.fsync(f.fileno())
            try:  # a stale journal beside the new database would be replayed into it
                for name in (DB_NAME + "-wal", DB_NAME + "-shm", INDEX_NAME, VALUES_NAME):
                    (folder / name).unlink(missing_ok=True)
                os.replace(tmp, folder / DB_NAME)
            finally:
                tmp.unlink(missing_ok=True)
            fsync_path(folder)
        finally:
            release_lock(lock_fd)

    def export(self, out: str | os.PathLike) -> Path:
        """Everything to .npz (keys, values, metadata) or metadata to .csv, by the suffix."""
        out = Path(out)
        ids = self.catalog.ids
        recs = self.records(ids)
        if out.suffix == ".csv":
            import csv

            with open(out, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(recs[0]) if recs else ["id"])
                w.writeheader()
                w.writerows(recs)
            return out
        if out.suffix != ".npz":
            raise StoreError(f"export format of {out.name!r} unknown: use .npz or .csv")
        cols = {
            k: np.array([r[k] if r[k] is not None else -1 for r in recs])
            for k in (recs[0] if recs else {})
        }
        np.savez_compressed(
            out,
            keys=self.keys_of(ids) if len(ids) else np.empty(0),
            values=self._values(ids) if len(ids) else np.empty(0),
            **cols,
        )
        return out
