"""``EpisodicStore``: key-value episodic memory in one folder (SQLite truth + FAISS cache).

Layout of a store folder::

    memory.sqlite   every memory (``memories``: key, label, counters; ``payloads``: the
                    value) and the store's settings (SQLAlchemy ORM, WAL journal)
    keys.faiss      the key index with a header saying which database version it covers
    writer.lock     held (flock) by the one process allowed to write

One process writes, any number read. On open the index file is trusted only as far as its
header says; anything newer is replayed from the database, so a kill at any moment loses
nothing that was committed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import faiss
import numpy as np
from sqlalchemy import (
    Connection,
    create_engine,
    event,
    insert,
    select,
    text,
)
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.pool import StaticPool

from stores import eviction
from stores.catalog import Catalog
from stores.errors import (
    MemoryNotFound,
    ReadOnlyStore,
    SchemaTooNew,
    StoreChanged,
    StoreCorrupt,
    StoreError,
    StoreLocked,
)
from stores.files import fsync_path, temp_file
from stores.key_index import Coverage, IndexSpec, KeyIndex
from stores.sampling import balanced_rows
from stores.schema import SCHEMA_VERSION, Base, Memory, Meta
from stores.validate import check_where, int_column, keys_array, values_array

DB_NAME, INDEX_NAME, LOCK_NAME = "memory.sqlite", "keys.faiss", "writer.lock"
EXACT_FILTER_LIMIT = 50_000  # filtered ANN searches over fewer candidates are done exactly
SAMPLE_POLICIES = ("uniform", "class-balanced", "task-balanced")


@dataclass
class Batch:
    """Memories fetched by id or sampled: metadata columns and (optionally) values."""

    ids: np.ndarray
    labels: np.ndarray
    tasks: np.ndarray  # -1 where written without a task id
    experiences: np.ndarray
    positions: np.ndarray
    values: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.ids.shape[0])


@dataclass
class SearchResult:
    """k nearest memories per query: (n, k) arrays, id -1 where fewer than k matched.

    Distances are squared L2 for metric "l2" and inner products for "ip", as FAISS gives them.
    """

    ids: np.ndarray
    distances: np.ndarray
    labels: np.ndarray
    tasks: np.ndarray
    experiences: np.ndarray
    positions: np.ndarray


@dataclass
class WriteResult:
    ids: np.ndarray  # ids given to the written rows (those the eviction policy kept)
    kept: np.ndarray  # indices into the incoming batch that were written
    evicted: np.ndarray  # ids deleted to make room


# Ids travel as one bound JSON array that SQLite expands: one cached statement however many
# ids, and nothing pasted into SQL.
_IDS = "(SELECT value FROM json_each(:ids))"
_DELETE_IDS = text(f"DELETE FROM memories WHERE id IN {_IDS}")
_DELETE_PAYLOADS = text(f"DELETE FROM payloads WHERE id IN {_IDS}")
_VALUES_OF = text(f"SELECT id, value FROM payloads WHERE id IN {_IDS}")
_KEYS_OF = text(f"SELECT id, key FROM memories WHERE id IN {_IDS}")
_CATALOG_ROWS = (
    "SELECT id, label, coalesce(task, -1), coalesce(experience, -1), position "
    "FROM memories WHERE id > ? ORDER BY id"
)
_UPSERT_META = (
    "INSERT INTO meta (name, value) VALUES (?, ?) "
    "ON CONFLICT(name) DO UPDATE SET value = excluded.value"
)
_KEY_ROWS = "SELECT id, key FROM memories WHERE id > ? ORDER BY id"
_UPDATE_KEY = "UPDATE memories SET key = ? WHERE id = ?"
_COUNT_REPLAYS = (
    "UPDATE memories SET replay_count = replay_count + ?, last_loss = coalesce(?, last_loss) "
    "WHERE id = ?"
)
_RECORDS_OF = text(
    "SELECT id, label, task, experience, position, written_at, replay_count, "
    f"last_loss FROM memories WHERE id IN {_IDS}"
)
_INSERT_ROWS = (
    "INSERT INTO memories (id, key, label, task, experience, position, "
    "written_at, replay_count) VALUES (?, ?, ?, ?, ?, ?, ?, 0)"
)
_INSERT_PAYLOADS = "INSERT INTO payloads (id, value) VALUES (?, ?)"
# schema 1 kept payloads in the memories table; opening such a store for writing moves them
_UPGRADE_FROM_1 = (
    "INSERT INTO payloads (id, value) SELECT id, value FROM memories",
    "ALTER TABLE memories DROP COLUMN value",
)


# SQLite pages of 16 KiB, not the default 4: a 784-float payload (3 KiB) fills a 4 KiB page by
# itself, so a flush of 500 memories wrote 500 pages, a syscall each. With 16 KiB pages the
# agent's experience-end flush takes half the time and sample(64) at 1M rows is unchanged
# (64 KiB pages made it slower); a flush of a few rows writes bigger pages and costs a little
# more (see docs/benchmarks.md).
PAGE_SIZE = 16384


def _on_connect(dbapi_conn, _record) -> None:
    # Let SQLAlchemy's BEGIN (below) start every transaction, reads included, so a reader
    # sees one consistent snapshot across statements (pysqlite alone would not begin reads).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute(f"PRAGMA page_size={PAGE_SIZE}")  # a new database only; before WAL is on
    cur.execute("PRAGMA journal_mode=WAL")  # persistent; readers never block the writer
    cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process kills
    _reading_pragmas(cur)
    cur.close()


def _on_connect_readonly(dbapi_conn, _record) -> None:
    # A reader opens the file with mode=ro and sets nothing persistent: it never turns a
    # stray (empty, foreign) file into a database.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=10000")
    _reading_pragmas(cur)
    cur.close()


def _reading_pragmas(cur) -> None:
    # random row reads (sampling) go through the OS page cache without a syscall each
    cur.execute("PRAGMA mmap_size=17179869184")
    cur.execute("PRAGMA cache_size=-65536")


def _on_begin(conn) -> None:
    conn.exec_driver_sql("BEGIN")


_TABLES = "SELECT name FROM sqlite_master WHERE type='table'"
_NEEDED_TABLES = ("memories", "payloads", "meta")


def _missing_tables(names) -> list[str]:
    return sorted(set(_NEEDED_TABLES) - set(names))


def check_snapshot(path: str | os.PathLike) -> None:
    """StoreCorrupt unless ``path`` is an intact store database: SQLite's quick_check passes,
    the store's tables and settings are there, and every memory has its payload. Opened
    immutable (read-only, no journal, no locks), so checking never changes the file."""
    import sqlite3

    path = Path(path)
    try:
        conn = sqlite3.connect(f"file:{quote(str(path))}?immutable=1", uri=True)
        try:
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise StoreCorrupt(f"{path} fails SQLite's integrity check: {check}")
            missing = _missing_tables(r[0] for r in conn.execute(_TABLES))
            if missing:
                raise StoreCorrupt(f"{path} is not a lifelong store (no table(s) {missing})")
            meta = {k: json.loads(v) for k, v in conn.execute("SELECT name, value FROM meta")}
            if "schema_version" not in meta:
                raise StoreCorrupt(f"{path} has no store settings")
            orphans = conn.execute(
                "SELECT count(*) FROM memories WHERE id NOT IN (SELECT id FROM payloads)"
            ).fetchone()[0]
            if orphans:
                raise StoreCorrupt(f"{path}: {orphans} memories have no payload")
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise StoreCorrupt(f"{path} is not a readable SQLite database ({exc})") from None
    except ValueError as exc:
        if isinstance(exc, StoreError):
            raise
        raise StoreCorrupt(f"{path} holds invalid store settings ({exc})") from None


def write_snapshot(source, dest: str | os.PathLike) -> None:
    """Copy the SQLite database of connection ``source`` to file ``dest``, on disk when this
    returns. The copy keeps no journal of its own: a copy cut short is garbage either way,
    so callers write it under a temporary name (as checkpoints do)."""
    import sqlite3

    dest_conn = sqlite3.connect(dest)
    try:
        dest_conn.execute("PRAGMA journal_mode=OFF")
        dest_conn.execute("PRAGMA synchronous=OFF")
        source.backup(dest_conn)
    finally:
        dest_conn.close()
    fd = os.open(dest, os.O_RDONLY)
    try:
        os.fsync(fd)  # once, instead of the journal's several
    finally:
        os.close(fd)


class EpisodicStore:
    """Write, search, sample, delete and re-key memories; see the module docstring."""

    # -- opening ------------------------------------------------------------------------
    def __init__(self, path: Path | None, readonly: bool, _create: dict | None = None) -> None:
        self.path = path
        self.readonly = readonly
        self._lock_fd: int | None = None
        self._in_transaction = False  # inside transaction(): writes join it, nothing commits
        if path is None:
            url, kw = "sqlite://", {"poolclass": StaticPool}
        elif readonly:
            url, kw = f"sqlite:///file:{quote(str(path / DB_NAME))}?mode=ro&uri=true", {}
        else:
            url, kw = f"sqlite:///{path / DB_NAME}", {}
        self.engine = create_engine(url, **kw)
        event.listen(self.engine, "connect", _on_connect_readonly if readonly else _on_connect)
        event.listen(self.engine, "begin", _on_begin)
        try:
            if not readonly:  # before the connection's first write (its journal mode)
                self._take_writer_lock()
            self._conn = self.engine.connect()
            if _create is not None:
                self._initialise(_create)
            self.meta = self._read_meta()
            if self.meta["schema_version"] < SCHEMA_VERSION:
                self._upgrade()
            self.spec = IndexSpec(**self.meta["index"])
            self.value_shape = tuple(self.meta["value_shape"])
            self.value_dtype = np.dtype(self.meta["value_dtype"])
            self.capacity: int | None = self.meta["capacity"]
        except (DatabaseError, OperationalError) as exc:
            self.close(save=False)
            raise StoreCorrupt(
                f"{path / DB_NAME if path else 'in-memory store'} is not a readable SQLite "
                f"store database or is corrupt ({exc.orig})"
            ) from None
        except (KeyError, TypeError, ValueError) as exc:
            self.close(save=False)
            if isinstance(exc, StoreError):
                raise
            raise StoreCorrupt(
                f"{self._where()} has damaged store settings in its meta table ({exc!r})"
            ) from None
        except BaseException:
            self.close(save=False)
            raise
        self.catalog = Catalog()
        self.index = KeyIndex(self.spec)
        # database versions the RAM catalog and index reflect (-1: nothing yet)
        self._catalog_version = self._index_version = -1
        self._index_max_id = -1
        self._saved_rows = 0
        self._load_index_file()
        self._sync()
        self._check_loaded_index()

    @classmethod
    def create(
        cls,
        path: str | os.PathLike | None,
        *,
        dim: int,
        value_shape: tuple[int, ...],
        value_dtype: str = "float32",
        metric: str = "l2",
        index: str = "flat",
        capacity: int | None = None,
        eviction_policy: str = "reservoir",
        seed: int = 0,
        **index_options,
    ) -> EpisodicStore:
        """A new, empty store in folder ``path`` (created), or in RAM when ``path`` is None."""
        spec = IndexSpec(dim=dim, metric=metric, kind=index, **index_options)
        if eviction_policy not in eviction.POLICIES:
            raise StoreError(
                f"unknown eviction policy {eviction_policy!r}; expected one of {eviction.POLICIES}"
            )
        if capacity is not None and capacity <= 0:
            raise StoreError(f"capacity must be positive, got {capacity}")
        settings = {
            "schema_version": SCHEMA_VERSION,
            "index": spec.__dict__,
            "value_shape": [int(s) for s in value_shape],
            "value_dtype": np.dtype(value_dtype).str,
            "capacity": capacity,
            "eviction": eviction_policy,
            "seed": seed,
            "version": 0,
            "destructive_version": 0,
            "next_id": 0,
            "seen": 0,
            "store_id": uuid.uuid4().hex,
            "rng_state": np.random.default_rng(seed).bit_generator.state,
        }
        folder = None
        if path is not None:
            folder = Path(path)
            if (folder / DB_NAME).exists():
                raise StoreError(f"{folder} already holds a store; open it instead")
            folder.mkdir(parents=True, exist_ok=True)
        return cls(folder, readonly=False, _create=settings)

    @classmethod
    def open(cls, path: str | os.PathLike, *, readonly: bool = False) -> EpisodicStore:
        """Open an existing store folder; ``readonly`` for a reader beside a live writer."""
        folder = Path(path)
        if not folder.is_dir():
            raise StoreError(f"store folder {folder} does not exist")
        if not (folder / DB_NAME).is_file():
            raise StoreError(f"{folder} is not a lifelong store (no {DB_NAME} inside)")
        return cls(folder, readonly=readonly)

    @classmethod
    def open_or_create(cls, path: str | os.PathLike, **create_args) -> EpisodicStore:
        if (Path(path) / DB_NAME).is_file():
            return cls.open(path)
        return cls.create(path, **create_args)

    def _take_writer_lock(self) -> None:
        if self.path is None:
            return
        lock = self.path / LOCK_NAME
        try:  # never through a planted symlink
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot open the writer lock {lock}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLocked(
                f"{self.path} is open for writing by another process; open it with readonly=True"
            ) from None
        self._lock_fd = fd

    def _upgrade(self) -> None:
        """Bring a store written by an older schema up to this one (writers only: a reader
        cannot change the file, and asks for a writer to open it once)."""
        if self.readonly:
            raise StoreError(
                f"{self._where()} was written by store schema version "
                f"{self.meta['schema_version']}; open it once for writing to upgrade it to "
                f"version {SCHEMA_VERSION}"
            )
        with self._tx() as c:
            Base.metadata.create_all(c)
            for statement in _UPGRADE_FROM_1:
                c.exec_driver_sql(statement)
            self._set_meta(c, schema_version=SCHEMA_VERSION)
        self.meta["schema_version"] = SCHEMA_VERSION

    def _initialise(self, settings: dict) -> None:
        Base.metadata.create_all(self.engine)
        with self._tx() as c:
            c.execute(
                insert(Meta), [{"name": k, "value": json.dumps(v)} for k, v in settings.items()]
            )

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """One transaction on the store's connection: commits on success, rolls back on error.
        Inside ``transaction()`` it joins that one instead."""
        if self._in_transaction:
            yield self._conn
            return
        with self._conn.begin():
            yield self._conn

    @contextmanager
    def transaction(self) -> Iterator[EpisodicStore]:
        """Several writes (write, delete, rekey, record_replay) as one transaction: all land
        or none, with one commit instead of one each. If any fails, the database rolls back
        and the store's catalog and index are rebuilt from it."""
        self._check_writable()
        if self._in_transaction:  # nested: part of the outer one
            yield self
            return
        self._in_transaction = True
        try:
            with self._conn.begin():
                yield self
        except BaseException:
            self._in_transaction = False
            self.catalog, self.index = Catalog(), KeyIndex(self.spec)
            self._catalog_version = self._index_version = -1
            self._sync()
            raise
        finally:
            self._in_transaction = False

    def _read_meta(self, conn: Connection | None = None) -> dict:
        def read(c: Connection) -> dict:
            rows = c.execute(select(Meta.name, Meta.value)).all()
            try:
                return {name: json.loads(v) for name, v in rows}
            except ValueError as exc:
                raise StoreCorrupt(
                    f"{self._where()}: the meta table holds invalid JSON ({exc})"
                ) from None

        if conn is not None:
            return read(conn)
        with self._tx() as c:
            meta = read(c)
        if "schema_version" not in meta:
            raise StoreError(f"{self._where()} has no store settings; it is not a lifelong store")
        if meta["schema_version"] > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"{self._where()} was written by store schema version {meta['schema_version']}; "
                f"this lifelong reads up to version {SCHEMA_VERSION}: upgrade lifelong"
            )
        return meta

    @staticmethod
    def _set_meta(conn: Connection, **values) -> None:
        # one prepared upsert, executed many: compiling a multi-row statement each step cost
        # more than the rest of a write
        conn.exec_driver_sql(_UPSERT_META, [(k, json.dumps(v)) for k, v in values.items()])

    def _where(self) -> str:
        return str(self.path) if self.path is not None else "in-memory store"

    # -- keeping the caches in step with the database ---------------------------------------
    def _load_index_file(self) -> None:
        """Adopt the saved index only where it covers this very database up to a version it
        has reached: an index ahead of the database (an older database put back), from
        another store, or unreadable is dropped, and the index is rebuilt from SQLite."""
        self._index_from_file = self._index_file_rejected = False
        if self.path is None or not (self.path / INDEX_NAME).exists():
            return
        self._index_file_rejected = True  # until it proves itself
        try:
            saved = KeyIndex.load(self.path / INDEX_NAME, self.spec)
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

    def _check_loaded_index(self) -> None:
        """After catching up, a loaded index must hold exactly the database's ids."""
        if self._index_from_file and not np.array_equal(self.index.ids(), self.catalog.ids):
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
            cur = s.exec_driver_sql(_KEY_ROWS, (start,)).cursor
            while chunk := cur.fetchmany(50_000):
                ids = np.fromiter((r[0] for r in chunk), np.int64, len(chunk))
                keys = np.frombuffer(b"".join(r[1] for r in chunk), np.float32)
                self.index.add(ids, keys.reshape(len(chunk), self.spec.dim))
                self._index_max_id = int(ids[-1])
        self._catalog_version = self._index_version = version

    def _append_catalog(self, rows: np.ndarray) -> None:
        self.catalog.append({f: rows[:, i] for i, f in enumerate(Catalog.FIELDS)})

    def refresh(self) -> None:
        """Readers: catch up with what the writer committed since the last call."""
        if self._committed_version() != self._catalog_version:
            self._sync()

    def _check_writable(self) -> None:
        if self.readonly:
            raise ReadOnlyStore(f"{self._where()} was opened read-only")

    # -- writing --------------------------------------------------------------------------
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
        now = time.time()
        rows = [
            (
                i,
                keys[k].tobytes(),
                lab,
                None if t < 0 else t,
                None if e < 0 else e,
                p,
                now,
            )
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
        changed = len(rows) > 0 or len(plan.evict) > 0
        version = self.meta["version"] + (1 if changed else 0)
        updates = {
            "seen": plan.seen if stream_seen is None else int(stream_seen),
            "rng_state": rng.bit_generator.state,
            "version": version,
            "next_id": int(self.meta["next_id"] + len(keep)),
        }
        if len(plan.evict):
            updates["destructive_version"] = version
        with self._tx() as c:
            if len(plan.evict):
                self._delete_rows(c, plan.evict)
            if rows:  # the hot path: plain executemany, no per-row ORM bookkeeping
                c.exec_driver_sql(_INSERT_ROWS, rows)
                c.exec_driver_sql(
                    _INSERT_PAYLOADS,
                    [(i, vals[k].tobytes()) for i, k in zip(ids.tolist(), keep.tolist())],
                )
            self._set_meta(c, **updates)
        self.meta.update(updates)
        self._apply_locally(
            plan.evict, ids, keys[keep], labels[keep], tasks[keep], exps[keep], pos[keep], version
        )
        return WriteResult(ids, keep, plan.evict)

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
        if len(ids):
            self._append_catalog(np.stack([ids, labels, tasks, exps, pos], axis=1))
            self.index.add(ids, keys)
            self._index_max_id = int(ids[-1])
        self._catalog_version = self._index_version = version
        grown = len(self.catalog) - self._saved_rows > max(20_000, self._saved_rows)
        if grown and not self._in_transaction:  # never save an index ahead of a commit
            self.save_index()

    def delete(self, ids) -> None:
        """Delete memories by id from the database and the index together."""
        self._check_writable()
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

    # -- reading --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.catalog)

    def _maybe_refresh(self) -> None:
        if self.readonly:
            self.refresh()

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
        with self._tx() as c:
            got = dict(c.execute(_VALUES_OF, {"ids": json.dumps(np.unique(ids).tolist())}).all())
        if len(got) < len(np.unique(ids)):
            raise StoreChanged("memories vanished while reading; call refresh() and retry")
        flat = np.frombuffer(b"".join(got[int(i)] for i in ids), self.value_dtype)
        return flat.reshape(len(ids), *self.value_shape).copy()  # writable, like any array

    def records(self, ids) -> list[dict]:
        """Every stored field but key and value, for display and export."""
        ids = [int(i) for i in np.atleast_1d(ids)]
        with self._tx() as c:
            got = {r.id: r._asdict() for r in c.execute(_RECORDS_OF, {"ids": json.dumps(ids)})}
        return [got[i] for i in ids if i in got]

    def keys_of(self, ids) -> np.ndarray:
        """The stored key vectors of ids (from the database, the source of truth)."""
        ids = [int(i) for i in np.atleast_1d(ids)]
        with self._tx() as c:
            got = dict(c.execute(_KEYS_OF, {"ids": json.dumps(ids)}).all())
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
        else:
            dist, ids = self.index.search(q, k, allowed)
        labels, tasks, exps, pos = self.catalog.gather(
            ids, ("label", "task", "experience", "position")
        )
        return SearchResult(ids, dist, labels, tasks, exps, pos)

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

    # -- housekeeping ---------------------------------------------------------------------
    def stats(self) -> dict:
        """Counts, settings and file sizes, JSON-able."""
        self._maybe_refresh()
        files = {}
        if self.path is not None:
            for name in (DB_NAME, DB_NAME + "-wal", INDEX_NAME):
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
            "tasks": self.catalog.counts("task"),
            "files_bytes": files,
        }

    def verify(self, sample: int = 1000) -> dict:
        """Check the database, the RAM index and the saved index file agree; never mutates
        the files and never raises: what cannot be read is reported as a problem.

        Everything is read in one read transaction (one snapshot of the database), and a
        reader's catalog and index are brought to that same snapshot first, so a writer
        committing meanwhile causes no false differences."""
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
        width = int(np.prod(self.value_shape)) * self.value_dtype.itemsize
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
            if not np.allclose(self.index.reconstruct(pick), stored.reshape(len(pick), -1)):
                problems.append("index keys differ from database keys")
        return db_ids

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
        self.index = KeyIndex(self.spec)
        self._index_version = -1
        self._sync()
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
        self.index.save(self.path / INDEX_NAME, coverage)
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
        lock = EpisodicStore.__new__(EpisodicStore)
        lock.path, lock._lock_fd = folder, None
        lock._take_writer_lock()
        try:
            with temp_file(folder / DB_NAME) as (f, tmp):
                with open(snapshot, "rb") as src:
                    shutil.copyfileobj(src, f)
                f.flush()
                os.fsync(f.fileno())
            try:  # a stale journal beside the new database would be replayed into it
                for name in (DB_NAME + "-wal", DB_NAME + "-shm", INDEX_NAME):
                    (folder / name).unlink(missing_ok=True)
                os.replace(tmp, folder / DB_NAME)
            finally:
                tmp.unlink(missing_ok=True)
            fsync_path(folder)
        finally:
            fcntl.flock(lock._lock_fd, fcntl.LOCK_UN)
            os.close(lock._lock_fd)

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

    def close(self, save: bool = True) -> None:
        """Save the index file (writers), close the database and release the writer lock.
        The lock is released even when saving fails (a full disk): the database is
        committed, and the next open rebuilds what the index file lacks."""
        try:
            if save and hasattr(self, "catalog") and not self.readonly:
                self.save_index()
        finally:
            if hasattr(self, "_conn"):
                self._conn.close()
                del self._conn
            self.engine.dispose()
            if self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> EpisodicStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
