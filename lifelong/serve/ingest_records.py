"""The ingest log's tables and how its rows become receipts and records (``ingest_log``
appends and reads them). Arrays are ``.npy`` bytes, read back with ``allow_pickle=False``."""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass

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
    case,
    func,
    insert,
    select,
)

meta = MetaData()
records = Table(
    "records",
    meta,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("kind", String, nullable=False),  # "batch" | "unlabelled" | "labels" | "end"
    Column("experience", Integer, nullable=False),
    Column("task_id", Integer),
    Column("n", Integer, nullable=False),  # examples (test examples for an end)
    Column("position", Integer, nullable=False),  # learnable examples before this record
    Column("x", LargeBinary),
    Column("y", LargeBinary),
    Column("key", String, unique=True),  # the client's idempotency key
    Column("received", Float, nullable=False),
    Column("label_of", Integer),  # a labels record: the unlabelled record it labels
    Column("predicted", LargeBinary),  # an unlabelled record: the answers given on arrival
    Column("hits", Integer),  # a labels record: how many of those answers were right
    # the learner finds an experience's first record, and the ends, without a scan
    Index("records_by_experience", "experience", "kind"),
)
labels_index = Index("records_by_label_of", records.c.label_of, unique=True)
LEARNED_KINDS = ("batch", "labels")  # the records the learner learns
LATE_COLUMNS = {"label_of": "INTEGER", "predicted": "BLOB", "hits": "INTEGER"}
settings = Table(
    "settings", meta, Column("name", String, primary_key=True), Column("value", String)
)


@dataclass
class LateLabels:
    """What the log holds of batches sent without labels (the service's state shows it)."""

    awaiting_batches: int = 0
    awaiting_examples: int = 0
    labelled_examples: int = 0  # examples whose labels came late
    answered: int = 0  # of those, examples answered on arrival
    hits: int = 0  # of those, answered right

    @property
    def arrival_accuracy(self) -> float | None:
        return self.hits / self.answered if self.answered else None

    def to_dict(self) -> dict:
        return {
            "awaiting_batches": self.awaiting_batches,
            "awaiting_examples": self.awaiting_examples,
            "labelled_late_examples": self.labelled_examples,
            "arrival_accuracy": self.arrival_accuracy,
        }


@dataclass(frozen=True)
class Receipt:
    """What an acknowledged record is: its place in the log and in the stream."""

    seq: int
    experience: int
    first_position: int  # the stream position of its first example
    n: int
    duplicate: bool = False  # a retry of a record already taken: nothing new was stored
    predicted: np.ndarray | None = None  # an unlabelled batch: the answers on arrival
    hits: int | None = None  # a labels record: how many of those answers were right


@dataclass(frozen=True)
class Record:
    seq: int
    kind: str
    experience: int
    task_id: int | None
    position: int
    x: np.ndarray | None
    y: np.ndarray | None
    received: float = 0.0  # when it was logged (seconds since the epoch): the wall clock's arrival


KIND_NAMES = {
    "batch": "a labelled batch",
    "unlabelled": "a batch sent without labels",
    "labels": "the labels of another batch",
    "end": "an experience end",
}


def record_of(r, x: bytes | None) -> Record:
    return Record(
        r.seq, r.kind, r.experience, r.task_id, r.position, array(x), array(r.y), r.received
    )


def receipt_of(row, duplicate: bool = False) -> Receipt:
    return Receipt(
        row.seq, row.experience, row.position, row.n, duplicate, array(row.predicted), row.hits
    )


def keyed(c, key: str | None):
    """The record an idempotency key was first used for, if any."""
    if key is None:
        return None
    return c.execute(select(records).where(records.c.key == key)).first()


def key_reused(key: str, row) -> str:
    return (
        f"Idempotency-Key {key!r} was first used for a different "
        f"{'experience end' if row.kind == 'end' else 'batch'} ({KIND_NAMES[row.kind]}, record "
        f"{row.seq}); a retry must repeat the same request, new data needs a new key"
    )


def insert_record(c, seq, kind, experience, task_id, position, x, y, key, **late) -> None:
    c.execute(
        insert(records).values(
            seq=seq,
            kind=kind,
            experience=experience,
            task_id=task_id,
            n=len(y) if y is not None else len(x),
            position=position,
            x=None if x is None else npy(x),
            y=None if y is None else npy(y),
            key=key,
            received=time.time(),
            **late,
        )
    )


def add_late_label_columns(engine) -> None:
    """A log made before late labels gains their columns (empty: it has none)."""
    with engine.begin() as c:
        have = {row[1] for row in c.exec_driver_sql("PRAGMA table_info(records)")}
        for name, kind in LATE_COLUMNS.items():
            if name not in have:
                c.exec_driver_sql(f"ALTER TABLE records ADD COLUMN {name} {kind}")
    labels_index.create(engine, checkfirst=True)


def count_late_labels(c) -> LateLabels:
    """The late-label counters, counted from the log (once, at open)."""
    labels = records.alias("labels")
    labelled = select(labels.c.seq).where(labels.c.label_of == records.c.seq).exists()
    awaiting = c.execute(
        select(func.count(), func.coalesce(func.sum(records.c.n), 0)).where(
            (records.c.kind == "unlabelled") & ~labelled
        )
    ).one()
    late = c.execute(
        select(
            func.coalesce(func.sum(records.c.n), 0),
            func.coalesce(func.sum(case((records.c.hits.is_not(None), records.c.n), else_=0)), 0),
            func.coalesce(func.sum(records.c.hits), 0),
        ).where(records.c.kind == "labels")
    ).one()
    return LateLabels(int(awaiting[0]), int(awaiting[1]), *(int(v) for v in late))


def pragmas(dbapi_conn, record_of) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")  # acknowledged = on the disk
    cur.close()


def setting(c, name: str):
    row = c.execute(select(settings.c.value).where(settings.c.name == name)).first()
    return None if row is None else json.loads(row.value)


def npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def array(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.load(io.BytesIO(blob), allow_pickle=False)
