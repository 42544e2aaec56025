"""The ingest log: every acknowledged batch and experience end, committed before the answer.

One SQLite file in the run folder (``ingest.sqlite``, WAL, ``synchronous=FULL``: a commit
survives a kill and a power cut). Records are append-only and numbered (``seq``); the learner
reads them in that order, and its checkpoint says how far it got (experience, batch), so a
restart learns every acknowledged record exactly once. An idempotency key makes a retried
request a no-op that answers what the first one did. Arrays are stored as ``.npy`` bytes,
read back with ``allow_pickle=False``.

The log has an identity (a random id written when the file is made): a checkpoint records it,
so a learner restarted beside another log (deleted and made anew, or an older copy put back)
refuses it instead of learning from the wrong place (``LogStream.resume_from``).
"""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DatabaseError

from lifelong.errors import ConfigError

NAME = "ingest.sqlite"

_meta = MetaData()
records = Table(
    "records",
    _meta,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("kind", String, nullable=False),  # "batch" | "end"
    Column("experience", Integer, nullable=False),
    Column("task_id", Integer),
    Column("n", Integer, nullable=False),  # examples (test examples for an end)
    Column("position", Integer, nullable=False),  # stream examples before this record
    Column("x", LargeBinary),
    Column("y", LargeBinary),
    Column("key", String, unique=True),  # the client's idempotency key
    Column("received", Float, nullable=False),
    # the learner finds an experience's first record, and the ends, without a scan
    Index("records_by_experience", "experience", "kind"),
)
settings = Table(
    "settings", _meta, Column("name", String, primary_key=True), Column("value", String)
)


class LogDamaged(ConfigError):
    """An ingest log SQLite cannot read (one line at the command line, exit 2)."""


class LogRefused(ValueError):
    """A record the log cannot take as it stands (the HTTP layer answers 409)."""


@dataclass(frozen=True)
class Receipt:
    """What an acknowledged record is: its place in the log and in the stream."""

    seq: int
    experience: int
    first_position: int  # the stream position of its first example
    n: int
    duplicate: bool = False  # a retry of a record already taken: nothing new was stored


@dataclass(frozen=True)
class Record:
    seq: int
    kind: str
    experience: int
    task_id: int | None
    position: int
    x: np.ndarray | None
    y: np.ndarray | None


class IngestLog:
    """Append (any thread, one at a time) and read (the learner) the run's ingest log."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = path = Path(run_dir) / NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine = create_engine(f"sqlite:///{path}")
            event.listen(self.engine, "connect", _pragmas)
            _meta.create_all(self.engine)
            self._lock = threading.Lock()
            with self.engine.begin() as c:  # the first opener names the log; the others read it
                if _json(c, "log_id") is None:
                    c.execute(
                        sqlite_insert(settings)
                        .values(name="log_id", value=json.dumps(uuid.uuid4().hex))
                        .on_conflict_do_nothing()
                    )
                self.log_id: str = _json(c, "log_id")
            with self.engine.connect() as c:
                self.input_shape = _json(c, "input_shape")
                last = c.execute(select(records).order_by(records.c.seq.desc()).limit(1)).first()
                ends = c.execute(select(func.count()).where(records.c.kind == "end")).scalar_one()
                totals = c.execute(
                    select(func.coalesce(func.sum(records.c.n), 0)).where(records.c.kind == "batch")
                ).scalar_one()
        except DatabaseError as exc:
            self.engine.dispose()
            raise LogDamaged(
                f"{path} is damaged ({exc.orig}); nothing was changed. Restore it from a "
                "backup, or start afresh with --reset-log (it moves the log and what was "
                "learned from it aside), or use another --out"
            ) from None
        self.last_seq = last.seq if last is not None else 0
        self.experience = int(ends)  # the open experience: ends so far
        self.received = int(totals)  # training examples acknowledged
        self.open_task = last.task_id if last is not None and last.kind == "batch" else None
        self.open_batches = 0 if last is None or last.kind == "end" else 1

    def close(self) -> None:
        self.engine.dispose()

    # -- writing (the HTTP handlers and the folder door) ----------------------------------
    def append_batch(
        self, x: np.ndarray, y: np.ndarray, task_id: int | None, key: str | None
    ) -> Receipt:
        """Commit one labelled batch of the open experience; checked by the caller."""
        return self.append_many([(x, y)], task_id, [key])[0]

    def append_many(
        self,
        batches: list[tuple[np.ndarray, np.ndarray]],
        task_id: int | None,
        keys: list[str | None],
        end: tuple[np.ndarray, np.ndarray, str | None] | None = None,
    ) -> list[Receipt]:
        """Commit batches (and, optionally, the experience's end) in one transaction, so
        nothing else lands between them (a task file of the folder door is one unit)."""
        with self._lock, self.engine.begin() as c:
            done = [self._taken(c, k, "batch", x, y, task_id) for (x, y), k in zip(batches, keys)]
            end_done = self._taken(c, end[2], "end", *end[:2], None) if end is not None else None
            if all(r is not None for r in done) and (end is None or end_done is not None):
                return done + ([end_done] if end_done is not None else [])
            shape = tuple(batches[0][0].shape[1:]) if batches else None
            if shape is not None and self.input_shape is None:
                c.execute(insert(settings).values(name="input_shape", value=json.dumps(shape)))
            elif shape is not None and shape != tuple(self.input_shape):
                raise LogRefused(
                    f"examples have shape {shape}; this run's have {tuple(self.input_shape)}"
                )
            if batches and self.open_batches and task_id != self.open_task:
                raise LogRefused(
                    f"experience {self.experience} is task {self.open_task}, this batch says "
                    f"task {task_id}; end the experience first (POST /v1/experiences/end)"
                )
            out, position, seq = [], self.received, self.last_seq
            for (x, y), key in zip(batches, keys):
                seq += 1
                _insert(c, seq, "batch", self.experience, task_id, position, x, y, key)
                out.append(Receipt(seq, self.experience, position, len(y)))
                position += len(y)
            if end is not None:
                if not batches and not self.open_batches:
                    raise LogRefused(f"experience {self.experience} has no batches to end")
                seq += 1
                xt, yt, key = end
                task = task_id if batches else self.open_task
                _insert(c, seq, "end", self.experience, task, position, xt, yt, key)
                out.append(Receipt(seq, self.experience, position, len(yt)))
        # committed: only now move the counters the next request sees
        if shape is not None and self.input_shape is None:
            self.input_shape = list(shape)
        self.last_seq, self.received = seq, position
        if end is not None:
            self.experience, self.open_batches, self.open_task = self.experience + 1, 0, None
        elif batches:
            self.open_batches, self.open_task = self.open_batches + len(batches), task_id
        return out

    def end_experience(self, x_test: np.ndarray, y_test: np.ndarray, key: str | None) -> Receipt:
        """Commit the open experience's end with its held-out test set."""
        if self.input_shape is not None and tuple(x_test.shape[1:]) != tuple(self.input_shape):
            raise LogRefused(
                f"test examples have shape {tuple(x_test.shape[1:])}; this run's have "
                f"{tuple(self.input_shape)}"
            )
        return self.append_many([], None, [], end=(x_test, y_test, key))[-1]

    def _taken(self, c, key: str | None, kind: str, x, y, task_id: int | None) -> Receipt | None:
        """The receipt of the record a retry repeats; a key reused for other data is refused
        (answering the old receipt would acknowledge data never stored)."""
        if key is None:
            return None
        row = c.execute(select(records).where(records.c.key == key)).first()
        if row is None:
            return None
        same_task = kind == "end" or row.task_id == task_id
        if row.kind != kind or not same_task or row.x != _npy(x) or row.y != _npy(y):
            what = "batch" if row.kind == "batch" else "experience end"
            raise LogRefused(
                f"Idempotency-Key {key!r} was first used for a different {what} (record "
                f"{row.seq}); a retry must repeat the same data, new data needs a new key"
            )
        return Receipt(row.seq, row.experience, row.position, row.n, duplicate=True)

    def keys_like(self, prefix: str, suffix: str) -> list[str]:
        """The middles of idempotency keys ``prefix...suffix`` (a door's own keys)."""
        with self.engine.connect() as c:
            rows = c.execute(
                select(records.c.key).where(records.c.key.like(f"{prefix}%{suffix}"))
            ).all()
        return [r.key[len(prefix) : len(r.key) - len(suffix)] for r in rows]

    # -- reading (the learner) ------------------------------------------------------------
    def read(self, after_seq: int, limit: int = 64) -> list[Record]:
        """Records after ``after_seq``, in order."""
        with self.engine.connect() as c:
            rows = c.execute(
                select(records)
                .where(records.c.seq > after_seq)
                .order_by(records.c.seq)
                .limit(limit)
            ).all()
        return [_record(r) for r in rows]

    def first_of(self, experience: int) -> int | None:
        """The seq just before experience ``experience``'s first record, None if none yet."""
        with self.engine.connect() as c:
            seq = c.execute(
                select(func.min(records.c.seq)).where(records.c.experience == experience)
            ).scalar()
        return None if seq is None else seq - 1

    def ends_before(self, experience: int) -> list[Record]:
        """The end records (test sets) of experiences before ``experience``."""
        with self.engine.connect() as c:
            rows = c.execute(
                select(records)
                .where((records.c.kind == "end") & (records.c.experience < experience))
                .order_by(records.c.seq)
            ).all()
        return [_record(r) for r in rows]


def _record(r) -> Record:
    return Record(r.seq, r.kind, r.experience, r.task_id, r.position, _array(r.x), _array(r.y))


def _insert(c, seq, kind, experience, task_id, position, x, y, key) -> None:
    c.execute(
        insert(records).values(
            seq=seq,
            kind=kind,
            experience=experience,
            task_id=task_id,
            n=len(y),
            position=position,
            x=_npy(x),
            y=_npy(y),
            key=key,
            received=time.time(),
        )
    )


def _pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")  # acknowledged = on the disk
    cur.close()


def _json(c, name: str):
    row = c.execute(select(settings.c.value).where(settings.c.name == name)).first()
    return None if row is None else json.loads(row.value)


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def _array(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.load(io.BytesIO(blob), allow_pickle=False)
