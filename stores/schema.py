"""The SQLite schema (SQLAlchemy 2.x typed ORM): the store's source of truth.

Keys and values are stored as raw little-endian bytes; their dtype and shape live in ``meta``,
so a row is compact (a 128-d float32 key is 512 bytes) and reads back without pickles.

Payloads live in their own table (schema version 2): a memory's row changes often (re-keys,
replay counts) and its payload never, and SQLite rewrites a whole row, overflow pages and
all, on any update. With a 3 KB MNIST payload in the row, re-keying 500 memories and counting
their replays cost 15 ms a commit; with payloads apart, 3.5 ms.
"""

from __future__ import annotations

from sqlalchemy import Float, Integer, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA_VERSION = 2


class Base(DeclarativeBase):
    pass


class Memory(Base):
    """One episodic memory: key vector, payload, and what the agent knows about it."""

    __tablename__ = "memories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    key: Mapped[bytes] = mapped_column(LargeBinary)
    label: Mapped[int] = mapped_column(Integer)
    task: Mapped[int | None] = mapped_column(Integer, nullable=True)
    experience: Mapped[int | None] = mapped_column(Integer, nullable=True)
    position: Mapped[int] = mapped_column(Integer)
    written_at: Mapped[float] = mapped_column(Float)
    replay_count: Mapped[int] = mapped_column(Integer, default=0)
    last_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    # No secondary indexes: filters and sampling read the RAM catalog, and every index
    # would be paid for on each write.


class Payload(Base):
    """A memory's value (the example itself): written once, read when replayed or fetched."""

    __tablename__ = "payloads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    value: Mapped[bytes] = mapped_column(LargeBinary)


class Meta(Base):
    """Store-wide settings and counters as name/value text (JSON where structured)."""

    __tablename__ = "meta"

    name: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[str] = mapped_column(String)


MEMORY_COLUMNS = ("id", "label", "task", "experience", "position")
