"""The FAISS index over memory keys: a persisted, rebuildable cache of the database.

FAISS ids are the SQLite primary keys (``IndexIDMap2``). The file holds a small JSON header
(which database version and ids it covers, a CRC of the index bytes) and the serialized index,
written to a temporary name and renamed, so a reader sees the old file or the new one, never
half of one.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import faiss
import numpy as np

from stores import ivf_assign, mapped_index
from stores.errors import StoreError
from stores.index_file import read_index_file, write_index_file
from stores.index_spec import IVF_KINDS, Coverage, IndexSpec
from stores.ivf_split import split_lists

__all__ = ["IVF_KINDS", "Coverage", "IndexSpec", "KeyIndex", "id_digest"]

OVERLAP_MIN = 1000  # keys in a write whose index add runs beside its commit


def id_digest(ids: np.ndarray) -> int:
    """An order-free digest of a set of ids: each id mixed (splitmix64's finaliser) and
    summed modulo 2**64. Sets of one size that differ (a lost id, a duplicate) share it by
    accident with odds of about 2**-64."""
    z = np.asarray(ids, np.int64).astype(np.uint64)  # a copy, mixed in place
    t = np.empty_like(z)
    z += np.uint64(0x9E3779B97F4A7C15)
    for shift, factor in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB), (31, 1)):
        np.right_shift(z, np.uint64(shift), out=t)
        z ^= t
        z *= np.uint64(factor)
    return int(z.sum(dtype=np.uint64))


def _one_faiss_thread() -> None:
    faiss.omp_set_num_threads(1)  # the adding thread's FAISS: the other core commits


_adders: dict[int, ThreadPoolExecutor] = {}


def _adding_thread() -> ThreadPoolExecutor:
    """One thread for every store's adds in this process (a forked child starts its own):
    the index lists then grow in one malloc arena, not in a new one for each write."""
    pid = os.getpid()
    if pid not in _adders:
        _adders.clear()  # a parent's executor, whose thread this child does not have
        _adders[pid] = ThreadPoolExecutor(
            1, thread_name_prefix="faiss-add", initializer=_one_faiss_thread
        )
    return _adders[pid]


class KeyIndex:
    """Add, remove and search keys by memory id; save and load atomically."""

    def __init__(self, spec: IndexSpec) -> None:
        self.spec = spec
        self.coverage = Coverage()
        self.tombstones: set[int] = set()  # HNSW cannot delete: removed ids are masked
        self.index = self._new_exact() if spec.kind != "hnsw" else self._new_hnsw()
        self.trained_ivf = False
        self.trained_size = 0
        self._deferred = False  # inside bulk(): IVF training waits for its end
        self.needs_rebuild = False  # IVF-PQ grown 4x: retrain from the database's keys
        self.catalog_snapshot: np.ndarray | None = None  # the catalog saved with a loaded file
        self._assigner: ivf_assign.ListAssigner | None = None  # files keys in many IVF lists
        # a mapped index file's owned copy, loading on a thread (``stores.mapped_index``)
        self._settling: mapped_index.Settling | None = None

    # -- a mapped index file --------------------------------------------------------------
    def settle(self, wait: bool = True) -> None:
        """Swap the mapped index for its owned copy once loaded (at once with ``wait``);
        ``IndexFileDamaged`` where the file failed a check, on every call until replaced."""
        loading = self._settling
        if loading is None or not (wait or loading.done()):
            return
        self.index = loading.result()
        self._settling = self._assigner = None

    def cancel_loading(self) -> None:
        """Stop loading a mapped file's copy (its store closes): the thread ends at its next
        step, and the index stays the mapped one."""
        if self._settling is not None:
            self._settling.cancel()

    def loaded(self) -> bool:
        """Whether no copy of a mapped file is still being read (safe from any thread)."""
        loading = self._settling
        return loading is None or loading.done()

    @property
    def settling(self) -> bool:
        """Whether the index is still the mapped file, its owned copy loading."""
        return self._settling is not None

    def _owned(self) -> faiss.Index:
        """The index, owned: mapped lists cannot change (FAISS aborts the process)."""
        self.settle(wait=True)
        return self.index

    def _by_id(self) -> faiss.Index:
        """The owned index with the id map removes and reconstructs need (not in the files
        of large indexes: it is built from the lists when first needed)."""
        index = self._owned()
        if self.trained_ivf:
            mapped_index.ensure_direct_map(index)
        return index

    # -- construction -------------------------------------------------------------------
    def _new_exact(self) -> faiss.Index:
        return faiss.IndexIDMap2(faiss.IndexFlat(self.spec.dim, self.spec.faiss_metric))

    def _new_hnsw(self) -> faiss.Index:
        inner = faiss.IndexHNSWFlat(self.spec.dim, self.spec.hnsw_m, self.spec.faiss_metric)
        inner.hnsw.efConstruction = self.spec.ef_construction
        inner.hnsw.efSearch = self.spec.ef_search
        return faiss.IndexIDMap2(inner)

    def _maybe_train_ivf(self) -> None:
        """Swap the exact index for IVF once enough keys exist to train its centroids, and
        add lists when the index has grown 4x since (about 4*sqrt(n) lists stay right): an
        IVF-Flat index splits its lists in place; IVF-PQ codes are not the keys, so for its
        retrain the store rebuilds it from the database."""
        n = self.index.ntotal
        if self.spec.kind not in IVF_KINDS or n < self.spec.train_min:
            return
        if self.trained_ivf:
            if not self.spec.nlist and n >= 4 * self.trained_size:
                self._grow_ivf(n)
            return
        ids = faiss.vector_to_array(self.index.id_map).astype(np.int64)
        keys = self.index.index.reconstruct_n(0, n)
        old = self.index
        self.train(keys[np.random.default_rng(0).permutation(n)[: self.training_size(n)]], n)
        old.reset()  # trained: the old index's copy of the keys can go before the add
        self.index.add_with_ids(keys, ids)

    def _grow_ivf(self, n: int) -> None:
        if self.spec.kind == "ivfpq":
            self.needs_rebuild = True
            return
        self.index = split_lists(self.index, self._nlist(n))
        self.index.set_direct_map_type(faiss.DirectMap.Hashtable)
        self.trained_size = n
        self._assigner = None

    def training_size(self, n: int) -> int:
        """Keys to train an IVF index for n keys on: 64 per list, as k-means wants."""
        return max(self._nlist(n) * 64, 1)

    def _nlist(self, n: int) -> int:
        return self.spec.nlist or int(np.clip(4 * np.sqrt(n), 1, max(n // 39, 1)))

    def train(self, sample: np.ndarray, n: int) -> None:
        """Make this an empty IVF (or IVF-PQ) index for about n keys, trained on ``sample``."""
        spec, nlist = self.spec, self._nlist(n)
        self.cancel_loading()  # replaced: the file's copy is not wanted
        self._settling = None
        quantizer = faiss.IndexFlat(spec.dim, spec.faiss_metric)
        if spec.kind == "ivfpq":  # 8 bits a sub-quantizer: 256 centroids each
            m, metric = spec.code_bytes, spec.faiss_metric
            ivf = faiss.IndexIVFPQ(quantizer, spec.dim, nlist, m, 8, metric)
        else:
            ivf = faiss.IndexIVFFlat(quantizer, spec.dim, nlist, spec.faiss_metric)
        ivf.train(np.ascontiguousarray(sample, np.float32))
        ivf.nprobe = spec.nprobe
        # IVF keeps our ids natively (an IDMap over IVF breaks on removal); the hashtable
        # direct map lets verify reconstruct keys by id.
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
        self.index, self.trained_ivf, self.trained_size = ivf, True, n
        self.needs_rebuild = False
        self._assigner = None

    def _ivf_ids(self) -> np.ndarray:
        """Every id stored in the IVF lists."""
        return _list_ids(self.index)

    # -- mutation -------------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal) - len(self.tombstones)

    def add(self, ids: np.ndarray, keys: np.ndarray) -> None:
        if len(ids) == 0:
            return
        self._owned()
        keys = np.ascontiguousarray(keys, np.float32)
        ids = np.ascontiguousarray(ids, np.int64)
        # IVF-Flat only: an IVF-PQ code is a residual of the list it is in, and verify
        # re-encodes keys with their nearest list (sa_encode) to compare codes exactly
        flat_lists = self.trained_ivf and self.spec.kind == "ivf"
        if flat_lists and self.index.nlist >= ivf_assign.MIN_LISTS:
            if self._assigner is None:  # the centroids' groups: once per set of lists
                self._assigner = ivf_assign.ListAssigner(self.index)
            self._assigner.add(ids, keys)
        else:
            self.index.add_with_ids(keys, ids)
        if not self._deferred:
            self._maybe_train_ivf()

    def add_beside(self, ids: np.ndarray, keys: np.ndarray) -> Callable[[], None] | None:
        """Start adding a large batch on the adding thread while the caller commits its rows,
        and return the join (which re-raises what the add raised). FAISS and SQLite's steps
        both release the GIL, so on two cores the add (its keys assigned to thousands of IVF
        centroids, on one FAISS thread) and the commit overlap. None for small batches, and
        for HNSW (whose adds cannot be undone if the commit fails): the caller adds after
        its commit."""
        if len(ids) < OVERLAP_MIN or self.spec.kind == "hnsw":
            return None
        self._owned()  # here, not on the adding thread: the swap is this thread's
        return _adding_thread().submit(self.add, ids, keys).result

    @contextlib.contextmanager
    def bulk(self) -> Iterator[None]:
        """Adds inside train IVF once, at the end: a rebuild from the database adds in
        chunks, and training at 10k, 40k, 160k and 640k keys of a million cost four k-means
        runs where the last one is all it keeps."""
        self._deferred = True
        try:
            yield
        finally:
            self._deferred = False
        self._maybe_train_ivf()

    def remove(self, ids: np.ndarray) -> None:
        if len(ids) == 0:
            return
        if self.spec.kind == "hnsw":
            self.tombstones.update(int(i) for i in ids)
        else:
            self._by_id().remove_ids(np.asarray(ids, np.int64))

    def ids(self) -> np.ndarray:
        """Every live id in the index, sorted."""
        return np.sort(self._live_ids())

    def id_digest(self) -> tuple[int, int]:
        """(count, ``id_digest``) of the live ids: compares them with the catalog's without
        sorting them (at 10M the sorts of both sides took 0.72 s; the digests 0.35 s)."""
        live = self._live_ids()
        return len(live), id_digest(live)

    def _live_ids(self) -> np.ndarray:
        if self.trained_ivf:
            all_ids = self._ivf_ids()
        else:
            all_ids = faiss.vector_to_array(self.index.id_map).astype(np.int64, copy=False)
        if self.tombstones:
            all_ids = all_ids[~np.isin(all_ids, np.fromiter(self.tombstones, np.int64))]
        return all_ids

    def as_stored(self, keys: np.ndarray) -> np.ndarray:
        """What the index holds for these keys: the keys, or for a trained IVF-PQ index their
        encoding decoded (so verify compares codes exactly, not a lossy key with a key)."""
        if self.spec.kind == "ivfpq" and self.trained_ivf:
            return self.index.sa_decode(self.index.sa_encode(np.ascontiguousarray(keys)))
        return keys

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        index = self._by_id() if len(ids) else self.index
        return (
            np.stack([index.reconstruct(int(i)) for i in ids])
            if len(ids)
            else (np.empty((0, self.spec.dim), np.float32))
        )

    # -- search ---------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None):
        """k nearest live ids of each query, restricted to ``allowed`` ids when given."""
        sel = None
        if allowed is not None:
            sel = faiss.IDSelectorBatch(np.asarray(allowed, np.int64))
        elif self.tombstones:
            dead = faiss.IDSelectorBatch(np.fromiter(self.tombstones, np.int64))
            sel = faiss.IDSelectorNot(dead)
            sel.keep_alive = dead  # keep the inner selector alive as long as the outer one
        params = self._params(sel)
        q = np.ascontiguousarray(queries, np.float32)
        if self.trained_ivf:  # FAISS shares queries among its threads, so a lone query ran
            # on one core; mode 1 shares its lists (1.14 -> 0.70 ms a query at 10M)
            self.index.parallel_mode = 1 if len(q) < faiss.omp_get_max_threads() else 0
        if params is None:
            return self.index.search(q, k)
        return self.index.search(q, k, params=params)

    def _params(self, sel):
        if sel is None:  # the common case: build the parameter object once
            if getattr(self, "_plain", None) is None or self._plain[0] != self.trained_ivf:
                self._plain = (self.trained_ivf, self._new_params(None))
            return self._plain[1]
        return self._new_params(sel)

    def _new_params(self, sel):
        if self.spec.kind == "hnsw":
            return faiss.SearchParametersHNSW(sel=sel, efSearch=max(self.spec.ef_search, 1))
        if self.spec.kind in IVF_KINDS and self.trained_ivf:
            return faiss.SearchParametersIVF(sel=sel, nprobe=self.spec.nprobe)
        return faiss.SearchParameters(sel=sel) if sel is not None else None

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: Path, coverage: Coverage, catalog: np.ndarray | None = None) -> None:
        """Write the index (and the catalog's columns, when given) to ``path`` atomically,
        then remember the coverage."""
        coverage.tombstones = sorted(self.tombstones)
        header = {
            "version": coverage.version,
            "max_id": coverage.max_id,
            "store_id": coverage.store_id,
            "tombstones": coverage.tombstones,
            "trained_ivf": self.trained_ivf,
            "trained_size": self.trained_size,
            "spec": self.spec.__dict__,
        }
        index = self._owned()
        lists = mapped_index.list_bytes(index) if self.trained_ivf else 0
        large = lists >= mapped_index.MAPPED_MIN_BYTES
        with mapped_index.without_direct_map(index) if large else contextlib.nullcontext():
            write_index_file(path, index, header, catalog, lists)
        self.coverage = coverage

    @classmethod
    def load(cls, path: Path, spec: IndexSpec, mapped: bool = False) -> KeyIndex:
        """Read a saved index; StoreError naming the file if it is missing, cut short, alien
        or holds something FAISS cannot read (a crafted body behind a valid header). The
        catalog saved with it, if any, is ``catalog_snapshot`` (else None). ``mapped``: a
        large IVF index is mapped, not read, and settles later (``stores.mapped_index``)."""
        opened = mapped_index.map_index_file(path, _check_ids) if mapped else None
        if opened is not None:
            index, header, catalog = opened.index, opened.header, opened.catalog
        else:
            index, header, catalog = read_index_file(path)
        try:
            out = cls._adopt(path, index, header, catalog, spec)
            if opened is not None:
                out._settling = opened.settling
                weakref.finalize(out, opened.settling.cancel)  # replaced before it settled
            return out
        except StoreError:
            raise
        except Exception as exc:  # a header may lack keys; an id map may be unreadable
            raise StoreError(f"index file {path} is damaged ({type(exc).__name__})") from None

    @classmethod
    def _adopt(cls, path: Path, index, header: dict, catalog, spec: IndexSpec) -> KeyIndex:
        saved = IndexSpec(**header["spec"])
        if (saved.dim, saved.metric, saved.kind) != (spec.dim, spec.metric, spec.kind):
            raise StoreError(f"index file {path} was built for {saved}, the store says {spec}")
        out = cls(spec)
        out.index = index
        if out.index.d != spec.dim:
            raise StoreError(f"index file {path} holds {out.index.d}-d keys, not {spec.dim}")
        out.trained_ivf = bool(header["trained_ivf"])
        out.trained_size = int(header.get("trained_size", 0))
        out.tombstones = {int(i) for i in header["tombstones"]}
        out.coverage = Coverage(
            int(header["version"]),
            int(header["max_id"]),
            sorted(out.tombstones),
            header.get("store_id"),
        )
        out.catalog_snapshot = catalog
        # an index without its ids (a crafted body) is damaged: fail here, not later; the
        # open compares the ids themselves with the catalog's (``id_digest``)
        held = out.index.invlists.compute_ntotal() if out.trained_ivf else out.index.id_map.size()
        if held != out.index.ntotal:
            raise StoreError(f"index file {path} holds {held} ids for {out.index.ntotal} keys")
        if spec.kind == "hnsw":
            faiss.downcast_index(out.index.index).hnsw.efSearch = spec.ef_search
        return out


def _list_ids(index: faiss.Index) -> np.ndarray:
    """Every id stored in an IVF index's lists."""
    inv = index.invlists
    ids = [
        faiss.rev_swig_ptr(inv.get_ids(i), inv.list_size(i))
        for i in range(inv.nlist)
        if inv.list_size(i)
    ]  # views of the lists; concatenate copies them
    return np.concatenate(ids).astype(np.int64, copy=False) if ids else np.empty(0, np.int64)


def _check_ids(owned: faiss.Index, catalog_ids: np.ndarray) -> None:
    """A mapped file's loaded index holds exactly its catalog's ids (run on its thread)."""
    live = _list_ids(owned)
    if (len(live), id_digest(live)) != (len(catalog_ids), id_digest(catalog_ids)):
        raise StoreError("its index and its catalog hold different ids")
