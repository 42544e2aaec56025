"""Episodic memory store: SQLite (via SQLAlchemy) is the truth, a FAISS index is its cache.

Knows vectors and rows, nothing of models or what tasks mean. Names are imported on first
use (PEP 562): the errors cost no FAISS or SQLAlchemy import.
"""

from importlib import import_module

from stores.errors import (
    MemoryNotFound,
    ReadOnlyStore,
    SchemaTooNew,
    StoreChanged,
    StoreCorrupt,
    StoreError,
    StoreLocked,
    StoreNotReady,
)

_STORE = ("Batch", "EpisodicStore", "SearchResult", "WriteResult")

__all__ = [
    *_STORE,
    "MemoryNotFound",
    "ReadOnlyStore",
    "SchemaTooNew",
    "StoreChanged",
    "StoreCorrupt",
    "StoreError",
    "StoreLocked",
    "StoreNotReady",
]


def __getattr__(name: str):
    if name in _STORE:
        return getattr(import_module("stores.store"), name)
    raise AttributeError(f"module 'stores' has no attribute {name!r}")
