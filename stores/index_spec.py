"""What an index is (``IndexSpec``, recorded in the store so every process builds the same
thing) and which database state a saved one reflects (``Coverage``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import faiss

from stores.errors import StoreError

KINDS = ("flat", "hnsw", "ivf", "ivfpq")
IVF_KINDS = ("ivf", "ivfpq")
METRICS = ("l2", "ip")


@dataclass
class IndexSpec:
    """How to index keys; recorded in the store so every process builds the same thing."""

    dim: int
    metric: str = "l2"
    kind: str = "flat"
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 64
    nlist: int = 0  # IVF lists; 0 = about 4*sqrt(n) when trained
    nprobe: int = 16
    train_min: int = 10_000  # IVF trains once this many keys exist; exact search before
    # IVF-PQ: each key kept as pq_m bytes (0: dim/4, 32 for 128-d keys, 16x smaller than the
    # floats); a search takes refine x k candidates and ranks them by their stored keys
    pq_m: int = 0
    refine: int = 4

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise StoreError(f"unknown index kind {self.kind!r}; expected one of {KINDS}")
        if self.metric not in METRICS:
            raise StoreError(f"unknown metric {self.metric!r}; expected one of {METRICS}")
        if self.dim <= 0:
            raise StoreError(f"key dimension must be positive, got {self.dim}")
        if self.kind == "ivfpq" and self.dim % self.code_bytes:
            raise StoreError(
                f"pq_m must divide the key dimension {self.dim}, got {self.code_bytes}"
            )
        if self.refine < 1:
            raise StoreError(f"refine must be at least 1, got {self.refine}")

    @property
    def code_bytes(self) -> int:
        """IVF-PQ's bytes per key."""
        return self.pq_m or max(1, self.dim // 4)

    @property
    def faiss_metric(self) -> int:
        return faiss.METRIC_L2 if self.metric == "l2" else faiss.METRIC_INNER_PRODUCT


@dataclass
class Coverage:
    """Which database state an index reflects: the data version and the largest id."""

    version: int = 0
    max_id: int = -1
    tombstones: list[int] = field(default_factory=list)
    store_id: str | None = None  # which store's database (a copy of another's is not this one)
