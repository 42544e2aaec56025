"""Growing an IVF-Flat index by splitting its lists (stores/ivf_split.py), on real digits."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
from sklearn.datasets import load_digits

from stores.ivf_split import split_lists


def digits() -> np.ndarray:
    x = load_digits().data.astype(np.float32)
    return np.ascontiguousarray(x + np.random.default_rng(0).normal(0, 0.5, x.shape), np.float32)


def ivf_over(keys: np.ndarray, nlist: int, metric: int) -> faiss.IndexIVFFlat:
    quantizer = faiss.IndexFlat(keys.shape[1], metric)
    ivf = faiss.IndexIVFFlat(quantizer, keys.shape[1], nlist, metric)
    ivf.own_fields = True
    quantizer.this.disown()
    ivf.train(keys[: nlist * 39])
    ivf.add_with_ids(keys, np.arange(len(keys), dtype=np.int64) * 3 + 7)  # ids are not rows
    ivf.nprobe = 4
    return ivf


def recall_at_10(ivf, keys: np.ndarray, metric: int) -> float:
    exact = faiss.IndexFlat(keys.shape[1], metric)
    exact.add(keys)
    truth = exact.search(keys[:300], 10)[1] * 3 + 7
    got = ivf.search(keys[:300], 10)[1]
    return float(np.mean([len(set(g) & set(t)) / 10 for g, t in zip(got, truth, strict=True)]))


@pytest.mark.parametrize("metric", [faiss.METRIC_L2, faiss.METRIC_INNER_PRODUCT])
def test_a_split_keeps_every_key_under_its_id_and_searches_as_well(metric):
    """1,797 digits in an IVF of 10 lists, split towards 40. Expect: about 40 lists; every id
    once with its key unchanged; most keys in the list of their nearest centroid; recall@10
    at the same nprobe no worse than the old index's less 0.05 (smaller lists: more found)."""
    keys = digits()
    old = ivf_over(keys, 10, metric)
    before = recall_at_10(old, keys, metric)
    new = split_lists(old, 40)
    new.set_direct_map_type(faiss.DirectMap.Hashtable)
    assert 30 <= new.nlist <= 50 and new.ntotal == len(keys) and old.invlists.compute_ntotal() == 0
    ids = np.arange(len(keys), dtype=np.int64) * 3 + 7
    held = np.concatenate(
        [
            faiss.rev_swig_ptr(new.invlists.get_ids(i), new.invlists.list_size(i)).copy()
            for i in range(new.nlist)
        ]
    )
    np.testing.assert_array_equal(np.sort(held), ids)
    np.testing.assert_array_equal(np.stack([new.reconstruct(int(i)) for i in ids]), keys)
    nearest = new.quantizer.search(keys, 1)[1][:, 0]
    own = np.empty(len(keys), np.int64)
    for i in range(new.nlist):
        got = faiss.rev_swig_ptr(new.invlists.get_ids(i), new.invlists.list_size(i))
        own[(np.asarray(got, np.int64) - 7) // 3] = i
    assert (nearest == own).mean() >= 0.95
    assert recall_at_10(new, keys, metric) >= before - 0.05


def test_a_split_is_deterministic_and_the_index_takes_adds_and_removals_after():
    """Two identical indexes split alike; the split one then takes new keys and removals."""
    keys = digits()
    a, b = (split_lists(ivf_over(keys, 10, faiss.METRIC_L2), 40) for _ in range(2))
    ca, cb = (x.quantizer.reconstruct_n(0, x.nlist) for x in (a, b))
    np.testing.assert_array_equal(ca, cb)
    a.set_direct_map_type(faiss.DirectMap.Hashtable)
    a.add_with_ids(keys[:5] + 100, np.array([1, 2, 3, 4, 5], np.int64))
    assert a.remove_ids(np.array([7, 10], np.int64)) == 2
    assert a.ntotal == len(keys) + 5 - 2
    assert a.search(keys[:5] + 100, 1)[1][:, 0].tolist() == [1, 2, 3, 4, 5]
