"""SQLite as the store uses it: connection settings, the SQL it runs, snapshots.

Statements are plain SQL executed many (the hot paths: SQLAlchemy's per-row ORM work cost
more than the writes themselves); ids travel as one bound JSON array that SQLite expands.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine, event, insert, text

from stores.errors import StoreCorrupt, StoreError
from stores.files import fsync_path, temp_file
from stores.folder import DB_NAME
from stores.schema import Base, Meta

# Ids travel as one bound JSON array that SQLite expands: one cached statement however many
# ids, and nothing pasted into SQL.
_IDS = "(SELECT value FROM json_each(:ids))"
_DELETE_IDS = text(f"DELETE FROM memories WHERE id IN {_IDS}")
_DELETE_PAYLOADS = text(f"DELETE FROM payloads WHERE id IN {_IDS}")
_KEYS_OF = text(f"SELECT id, key FROM memories WHERE id IN {_IDS}")
# Reads on the hot path (a replay draw's values, a filtered search's keys) go to the driver
# as one statement: one statement is one snapshot, and SQLAlchemy's execution and its
# BEGIN/COMMIT cost twice the lookups themselves (0.46 against 0.23 ms for 64 values of 1M).
_RAW_IDS = "(SELECT value FROM json_each(?))"
_VALUES_OF_RAW = f"SELECT id, value FROM payloads WHERE id IN {_RAW_IDS}"
_KEYS_OF_RAW = f"SELECT id, key FROM memories WHERE id IN {_RAW_IDS}"
_KEYS_OF_RAW_ORDERED = _KEYS_OF_RAW + " ORDER BY id"
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
    fsync_path(dest)  # once, instead of the journal's several


def make_database(folder: Path, settings: dict) -> None:
    """A new store's database, whole (tables and settings), made under a temporary name and
    renamed in. A reader beside the writer then sees no database or a made one, never a
    half-made one, so a database without tables or settings is damage, not a writer at work
    (the memory commands can say "corrupt" at once)."""
    try:
        _make_database(folder, settings)
    except OSError as exc:
        raise StoreError(f"cannot make a store database in {folder}: {exc.strerror}") from None


def _make_database(folder: Path, settings: dict) -> None:
    dest = folder / DB_NAME
    if dest.exists():  # made since the caller looked: under the lock now, never replaced
        raise StoreError(f"{folder} already holds a store; open it instead")
    for stale in folder.glob(f".{DB_NAME}.*.tmp*"):  # a making killed (we hold the lock)
        stale.unlink(missing_ok=True)
    with temp_file(dest) as (f, tmp):
        f.close()  # SQLite writes it; the helper keeps it exclusive and removes it on failure
        engine = create_engine(f"sqlite:///{tmp}")
        event.listen(engine, "connect", _on_connect)
        event.listen(engine, "begin", _on_begin)  # the settings in one transaction
        try:
            Base.metadata.create_all(engine)
            with engine.begin() as c:
                rows = [{"name": k, "value": json.dumps(v)} for k, v in settings.items()]
                c.execute(insert(Meta), rows)
        finally:
            engine.dispose()  # the last connection closed: its log folded into the file
    try:
        with open(tmp, "rb") as made:
            os.fsync(made.fileno())
        for journal in (DB_NAME + "-wal", DB_NAME + "-shm"):  # a stale one would be replayed
            (folder / journal).unlink(missing_ok=True)
        os.replace(tmp, dest)
    finally:
        for name in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            name.unlink(missing_ok=True)
    fsync_path(folder)
