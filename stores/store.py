"""``EpisodicStore``: key-value episodic memory in one folder (SQLite truth + FAISS cache).

Layout of a store folder::

    memory.sqlite   every memory (``memories``: key, label, counters; ``payloads``: the
                    value) and the store's settings (SQLAlchemy ORM, WAL journal)
    keys.faiss      the key index with a header saying which database version it covers
    values.bin      the values again, by offset: a cache read when a few are wanted
                    (``value_file.py``), each slot checked, any it cannot vouch for read
                    from the database
    writer.lock     held (flock) by the one process allowed to write

One process writes, any number read. On open the index file is trusted only as far as its
header says; anything newer is replayed from the database, so a kill at any moment loses
nothing that was committed. A new store's database is made whole (tables, settings) under
a temporary name and renamed in, so a reader finds none or a made one.
"""

from __future__ import annotations

import errno
import json
import os
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import numpy as np
from sqlalchemy import Connection, create_engine, event, insert, select
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.pool import StaticPool

from stores import eviction
from stores.catalog import Catalog
from stores.errors import (
    SchemaTooNew,
    StoreCorrupt,
    StoreError,
    StoreNotReady,
)
from stores.folder import DB_NAME, VALUES_NAME, release_lock, take_writer_lock
from stores.key_index import IndexSpec, KeyIndex
from stores.maintenance import Maintenance
from stores.reads import Reads
from stores.results import Batch, SearchResult, WriteResult
from stores.schema import SCHEMA_VERSION, Base, Meta
from stores.sqlite import (
    _TABLES,
    _UPGRADE_FROM_1,
    _UPSERT_META,
    _missing_tables,
    _on_begin,
    _on_connect,
    _on_connect_readonly,
    check_snapshot,
    make_database,
    write_snapshot,
)
from stores.sync import CacheSync
from stores.value_file import ValueFile
from stores.writes import Writes

HEX = frozenset("0123456789abcdef")
_META_TABLE = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"

__all__ = [
    "Batch",
    "EpisodicStore",
    "SearchResult",
    "WriteResult",
    "check_snapshot",
    "write_snapshot",
]


def _reader_mode(folder: Path) -> str:
    """SQLite's open mode for a reader. Where the folder cannot be written (a read-only mount,
    a backup), SQLite cannot make the shared-memory file a WAL database needs: with none there
    and nothing in the write-ahead log, the file is opened as immutable (no writer can change
    it there); with commits only in the log, it is refused saying why."""
    mode = "mode=ro&uri=true"
    if os.access(folder, os.W_OK) or (folder / f"{DB_NAME}-shm").exists():
        return mode
    wal = folder / f"{DB_NAME}-wal"
    if wal.exists() and wal.stat().st_size > 0:
        raise StoreError(
            f"{folder} cannot be written and its write-ahead log ({wal.name}) holds commits "
            "not yet in the database: open the store once where it can be written (a writer "
            "folds the log in when it closes), then read it here"
        )
    return mode + "&immutable=1"


class EpisodicStore(CacheSync, Writes, Reads, Maintenance):
    """Write, search, sample, delete and re-key memories; see the module docstring."""

    # -- opening ------------------------------------------------------------------------
    def __init__(
        self,
        path: Path | None,
        readonly: bool,
        _create: dict | None = None,
        _reader_waits: bool = False,
    ) -> None:
        self.path = path
        self.readonly = readonly
        self._lock_fd: int | None = None
        self.value_file: ValueFile | None = None
        self._in_transaction = False  # inside transaction(): writes join it, nothing commits
        self._values_to_file: list[tuple[np.ndarray, np.ndarray]] = []  # until it commits
        if path is None:
            url, kw = "sqlite://", {"poolclass": StaticPool}
        elif readonly:
            url, kw = f"sqlite:///file:{quote(str(path / DB_NAME))}?{_reader_mode(path)}", {}
        else:
            url, kw = f"sqlite:///{path / DB_NAME}", {}
        self.engine = create_engine(url, **kw)
        event.listen(self.engine, "connect", _on_connect_readonly if readonly else _on_connect)
        event.listen(self.engine, "begin", _on_begin)
        try:
            if not readonly:  # before the connection's first write (its journal mode)
                self._take_writer_lock()
            if _create is not None and path is not None:
                make_database(path, _create)  # whole, then renamed in: see make_database
            self._conn = self.engine.connect()
            if _create is not None and path is None:
                self._initialise(_create)
            if _reader_waits and not self._made():
                raise StoreNotReady(
                    f"{path / DB_NAME} has no store settings yet: its writer is making it"
                )
            self.meta = self._read_meta()
            if self.meta["schema_version"] < SCHEMA_VERSION:
                self._upgrade()
            with self._conn.begin():
                missing = _missing_tables(self._conn.exec_driver_sql(_TABLES).scalars().all())
            if missing:
                raise StoreCorrupt(
                    f"{self._where()} is damaged: table(s) {missing} are missing from "
                    f"{DB_NAME} (restore the folder from a backup, or start a new store)"
                )
            self.spec = IndexSpec(**self.meta["index"])
            self.value_shape = tuple(self.meta["value_shape"])
            self.value_dtype = np.dtype(self.meta["value_dtype"])
            self.value_nbytes = int(np.prod(self.value_shape)) * self.value_dtype.itemsize
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
        self._seen_data_version: int | None = None  # readers: SQLite's data_version last seen
        self._saved_rows = 0
        self.value_file = self._open_value_file()
        self._load_index_file()
        self._catch_up()
        self._check_loaded_index()
        if self.value_file is not None:  # after the index copy: they share the disk
            self.value_file.read_ahead(after=self.index.loaded)

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
    def open_reader(cls, path: str | os.PathLike) -> EpisodicStore:
        """Open a store read-only beside the writer that makes it: StoreNotReady while it has
        not made it, or is making it this moment (its database there, its tables not yet)."""
        folder = Path(path)
        if not (folder / DB_NAME).is_file():
            raise StoreNotReady(f"{folder} holds no {DB_NAME} yet")
        return cls(folder, readonly=True, _reader_waits=True)

    @classmethod
    def open_or_create(cls, path: str | os.PathLike, **create_args) -> EpisodicStore:
        if (Path(path) / DB_NAME).is_file():
            return cls.open(path)
        return cls.create(path, **create_args)

    def _open_value_file(self) -> ValueFile | None:
        """The values by offset (``value_file.py``); None in RAM, for a store from before
        store ids, or one whose id is not the hex a store is made with."""
        store_id = str(self.meta.get("store_id", ""))
        if self.path is None or len(store_id) < 16 or not all(c in HEX for c in store_id):
            return None
        return ValueFile.open(
            self.path / VALUES_NAME,
            store_id=store_id,
            nbytes=self.value_nbytes,
            capacity=self.capacity,
            writable=not self.readonly,
            next_id=self.meta["next_id"],
        )

    def _take_writer_lock(self) -> None:
        if self.path is not None:
            self._lock_fd = take_writer_lock(self.path)

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

    def _driver(self):
        """The sqlite3 connection under ``_conn``, for one-statement reads on the hot path
        (in autocommit, or inside the open ``transaction()``, whose writes it sees)."""
        return self._conn.connection.driver_connection

    def _made(self) -> bool:
        """Its writer has committed the settings (it makes the tables, then writes them)."""
        with self._conn.begin():
            if self._conn.exec_driver_sql(_META_TABLE).first() is None:
                return False
            return self._conn.execute(select(Meta.name).limit(1)).first() is not None

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

    def __len__(self) -> int:
        return len(self.catalog)

    def close(self, save: bool = True) -> None:
        """Save the index file (writers), close the database and release the writer lock.
        On a full disk the index file is left as it was, with a warning: it is a cache, the
        database is committed, and the next open rebuilds what the index file lacks."""
        try:
            if save and hasattr(self, "catalog") and not self.readonly:
                self.save_index()
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            warnings.warn(
                f"{self._where()}: index file not saved ({exc.strerror}); the next open "
                "rebuilds it from the database",
                stacklevel=2,
            )
        finally:
            if hasattr(self, "index"):
                self.index.cancel_loading()
            if self.value_file is not None:
                self.value_file.close()
            if hasattr(self, "_conn"):
                self._conn.close()
                del self._conn
            self.engine.dispose()
            if self._lock_fd is not None:
                release_lock(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> EpisodicStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
