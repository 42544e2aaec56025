"""What store calls return: fetched or sampled memories, search hits, write outcomes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
