"""The ingest log: every acknowledged batch and experience end, committed before the answer.

One SQLite file in the run folder (``ingest.sqlite``, WAL, ``synchronous=FULL``: a commit
survives a kill and a power cut). Records are append-only and numbered (``seq``); the learner
reads them in that order, and its checkpoint says how far it got (experience, batch), so a
restart learns every acknowledged record exactly once. An idempotency key makes a retried
request a no-op that answers what the first one did. Arrays are stored as ``.npy`` bytes,
read back with ``allow_pickle=False`` (``ingest_records``: the tables and row codecs).

Labels may come late (a stream whose labels arrive after its examples): a batch sent without
labels is an ``unlabelled`` record, answered on arrival with the published weights' labels
(kept in the record); its ``labels`` record comes later, names it (``label_of``), and is the
one the learner learns, in log order like any batch, in the experience open when the labels
came. ``hits`` keeps how many of the arrival answers were right (online accuracy on arrival).

The log has an identity (a random id written when the file is made): a checkpoint records it,
so a learner restarted beside another log (deleted and made anew, or an older copy put back)
refuses it instead of learning from the wrong place (``LogStream.resume_from``).
"""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, event, func, insert, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DatabaseError

from lifelong.errors import ConfigError
from lifelong.serve.ingest_records import (
    KIND_NAMES,
    LEARNED_KINDS,
    LateLabels,
    Receipt,
    Record,
    add_late_label_columns,
    array,
    count_late_labels,
    insert_record,
    key_reused,
    keyed,
    meta,
    npy,
    pragmas,
    receipt_of,
    record_of,
    records,
    setting,
    settings,
)

__all__ = [
    "IngestLog",
    "LabelCountMismatch",
    "LateLabels",
    "LogRefused",
    "Receipt",
    "Record",
    "UnknownBatch",
]

NAME = "ingest.sqlite"


class LogDamaged(ConfigError):
    """An ingest log SQLite cannot read (one line at the command line, exit 2)."""


class LogRefused(ValueError):
    """A record the log cannot take as it stands (the HTTP layer answers 409)."""


class UnknownBatch(LookupError):
    """Labels for a record the log does not hold (the HTTP layer answers 404)."""


class LabelCountMismatch(ValueError):
    """Labels that do not match their batch's size (the HTTP layer answers 400)."""


class IngestLog:
    """Append (any thread, one at a time) and read (the learner) the run's ingest log."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = path = Path(run_dir) / NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine = create_engine(f"sqlite:///{path}")
            event.listen(self.engine, "connect", pragmas)
            meta.create_all(self.engine)
            add_late_label_columns(self.engine)
            self._lock = threading.Lock()
            with self.engine.begin() as c:  # the first opener names the log; the others read it
                if setting(c, "log_id") is None:
                    c.execute(
                        sqlite_insert(settings)
                        .values(name="log_id", value=json.dumps(uuid.uuid4().hex))
                        .on_conflict_do_nothing()
                    )
                self.log_id: str = setting(c, "log_id")
            with self.engine.connect() as c:
                self.input_shape = setting(c, "input_shape")
                last = c.execute(select(records).order_by(records.c.seq.desc()).limit(1)).first()
                ends = c.execute(select(func.count()).where(records.c.kind == "end")).scalar_one()
                totals = c.execute(
                    select(func.coalesce(func.sum(records.c.n), 0)).where(
                        records.c.kind.in_(LEARNED_KINDS)
                    )
                ).scalar_one()
                self.late = count_late_labels(c)
        except DatabaseError as exc:
            self.engine.dispose()
            raise LogDamaged(
                f"{path} is damaged ({exc.orig}); nothing was changed. Restore it from a "
                "backup, or start afresh with --reset-log (it moves the log and what was "
                "learned from it aside), or use another --out"
            ) from None
        self.last_seq = last.seq if last is not None else 0
        self.experience = int(ends)  # the open experience: ends so far
        self.received = int(totals)  # labelled training examples acknowledged
        self.open_task = last.task_id if last is not None and last.kind != "end" else None
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
            if batches:
                self._admit(c, shape, task_id, "this batch says")
            out, position, seq = [], self.received, self.last_seq
            for (x, y), key in zip(batches, keys):
                seq += 1
                insert_record(c, seq, "batch", self.experience, task_id, position, x, y, key)
                out.append(Receipt(seq, self.experience, position, len(y)))
                position += len(y)
            if end is not None:
                if not batches and not self.open_batches:
                    raise LogRefused(f"experience {self.experience} has no batches to end")
                seq += 1
                xt, yt, key = end
                task = task_id if batches else self.open_task
                insert_record(c, seq, "end", self.experience, task, position, xt, yt, key)
                out.append(Receipt(seq, self.experience, position, len(yt)))
        # committed: only now move the counters the next request sees
        self.last_seq, self.received = seq, position
        if batches:
            self._opened(shape, task_id, len(batches))
        if end is not None:
            self.experience, self.open_batches, self.open_task = self.experience + 1, 0, None
        return out

    def append_unlabelled(
        self, x: np.ndarray, task_id: int | None, key: str | None, predicted: np.ndarray | None
    ) -> Receipt:
        """Commit a batch whose labels come later (``append_labels``), with the answers it
        was given on arrival (None before anything was learned); checked by the caller."""
        with self._lock, self.engine.begin() as c:
            row = keyed(c, key)
            if row is not None:
                if row.kind != "unlabelled" or row.task_id != task_id or row.x != npy(x):
                    raise LogRefused(key_reused(key, row))
                return receipt_of(row, duplicate=True)
            shape = tuple(x.shape[1:])
            self._admit(c, shape, task_id, "this batch says")
            seq = self.last_seq + 1
            insert_record(
                c,
                seq,
                "unlabelled",
                self.experience,
                task_id,
                self.received,
                x,
                None,
                key,
                predicted=None if predicted is None else npy(predicted),
            )
        self.last_seq = seq
        self._opened(shape, task_id, 1)
        self.late.awaiting_batches += 1
        self.late.awaiting_examples += len(x)
        return Receipt(seq, self.experience, self.received, len(x), predicted=predicted)

    def append_labels(self, label_of: int, y: np.ndarray, key: str | None) -> Receipt:
        """Commit the labels of unlabelled record ``label_of``; the learner learns its batch
        at this point of the log. Labels are taken once: a retry with the same labels answers
        the first receipt, other labels are refused."""
        with self._lock, self.engine.begin() as c:
            target = c.execute(select(records).where(records.c.seq == label_of)).first()
            if target is None:
                raise UnknownBatch(
                    f"the ingest log has no record {label_of} (its records are 1..{self.last_seq})"
                )
            if target.kind != "unlabelled":
                raise LogRefused(
                    f"record {label_of} is {KIND_NAMES[target.kind]}: only a batch sent "
                    "without labels (POST /v1/observe with x alone) takes labels later"
                )
            if len(y) != target.n:
                raise LabelCountMismatch(
                    f"batch {label_of} holds {target.n} examples; {len(y)} labels were sent"
                )
            done = c.execute(select(records).where(records.c.label_of == label_of)).first()
            if done is not None:
                if done.y != npy(y):
                    raise LogRefused(
                        f"batch {label_of} was labelled already (record {done.seq}) with other "
                        "labels; labels are taken once"
                    )
                return receipt_of(done, duplicate=True)
            row = keyed(c, key)
            if row is not None:
                raise LogRefused(key_reused(key, row))
            self._admit(c, None, target.task_id, f"batch {label_of} is")
            predicted = array(target.predicted)
            hits = None if predicted is None else int((predicted == y).sum())
            seq = self.last_seq + 1
            insert_record(
                c,
                seq,
                "labels",
                self.experience,
                target.task_id,
                self.received,
                None,
                y,
                key,
                label_of=label_of,
                hits=hits,
            )
        out = Receipt(seq, self.experience, self.received, len(y), hits=hits)
        self.last_seq, self.received = seq, self.received + len(y)
        self._opened(None, target.task_id, 1)
        late = self.late
        late.awaiting_batches -= 1
        late.awaiting_examples -= len(y)
        late.labelled_examples += len(y)
        if hits is not None:
            late.answered, late.hits = late.answered + len(y), late.hits + hits
        return out

    def _admit(self, c, shape: tuple | None, task_id: int | None, says: str) -> None:
        """Refuse a batch of another shape than the run's, or of another task than the open
        experience's; the first batch's shape becomes the run's (in this transaction)."""
        if shape is not None and self.input_shape is None:
            c.execute(insert(settings).values(name="input_shape", value=json.dumps(shape)))
        elif shape is not None and shape != tuple(self.input_shape):
            raise LogRefused(
                f"examples have shape {shape}; this run's have {tuple(self.input_shape)}"
            )
        if self.open_batches and task_id != self.open_task:
            raise LogRefused(
                f"experience {self.experience} is task {self.open_task}, {says} task "
                f"{task_id}; end the experience first (POST /v1/experiences/end)"
            )

    def _opened(self, shape: tuple | None, task_id: int | None, batches: int) -> None:
        """After a commit: the open experience took ``batches`` batches of ``task_id``."""
        if shape is not None and self.input_shape is None:
            self.input_shape = list(shape)
        self.open_batches, self.open_task = self.open_batches + batches, task_id

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
        row = keyed(c, key)
        if row is None:
            return None
        same_task = kind == "end" or row.task_id == task_id
        if row.kind != kind or not same_task or row.x != npy(x) or row.y != npy(y):
            raise LogRefused(key_reused(key, row))
        return receipt_of(row, duplicate=True)

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
            wanted = [r.label_of for r in rows if r.kind == "labels"]
            examples = dict(  # a labels record's examples are its unlabelled record's
                c.execute(select(records.c.seq, records.c.x).where(records.c.seq.in_(wanted)))
                .tuples()
                .all()
            )
        return [record_of(r, examples.get(r.label_of, r.x)) for r in rows]

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
        return [record_of(r, r.x) for r in rows]
