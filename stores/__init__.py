"""Episodic memory store: SQLite (via SQLAlchemy) is the truth, a FAISS index is its cache.

Knows vectors and rows, nothing of models or what tasks mean.
"""

from stores.errors import StoreError
from stores.store import Batch, EpisodicStore, SearchResult, WriteResult

__all__ = ["Batch", "EpisodicStore", "SearchResult", "StoreError", "WriteResult"]
