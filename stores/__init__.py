"""Episodic memory store: SQLite (via SQLAlchemy) is the truth, a FAISS index is its cache.

Knows vectors and rows, nothing of models or what tasks mean.
"""

from stores.errors import (
    MemoryNotFound,
    ReadOnlyStore,
    SchemaTooNew,
    StoreChanged,
    StoreCorrupt,
    StoreError,
    StoreLocked,
)
from stores.store import Batch, EpisodicStore, SearchResult, WriteResult

__all__ = [
    "Batch",
    "EpisodicStore",
    "MemoryNotFound",
    "ReadOnlyStore",
    "SchemaTooNew",
    "SearchResult",
    "StoreChanged",
    "StoreCorrupt",
    "StoreError",
    "StoreLocked",
    "WriteResult",
]
