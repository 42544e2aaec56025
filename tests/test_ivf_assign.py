"""Filing keys in an IVF index's lists through groups of its centroids (stores/ivf_assign.py),
on real digits; and a store whose index has that many lists, through its own write path."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from stores import ivf_assign
from stores.ivf_assign import ListAssigner
from tests.test_ivf_split import digits, recall_at_10


def trained(keys: np.ndarray, nlist: int, metric: int) -> faiss.IndexIVFFlat:
    quantizer = faiss.IndexFlat(keys.shape[1], metric)
    ivf = faiss.IndexIVFFlat(quantizer, keys.shape[1], nlist, metric)
    ivf.cp.min_points_per_centroid = 1
    ivf.train(keys)
    ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
    ivf.nprobe = 4
    return ivf


@pytest.mark.parametrize("metric", [faiss.METRIC_L2, faiss.METRIC_INNER_PRODUCT])
def test_keys_filed_through_the_groups_land_where_the_flat_quantizer_puts_them(metric):
    """1,797 digits, an IVF of 120 lists: the assigner's list is the flat quantizer's nearest
    centroid for at least 97% of keys; filed so (ids not rows), every id holds its key, a
    search finds as much as with FAISS's own add (less 0.02), and the assigner is the same
    twice over."""
    keys = digits()
    ids = np.arange(len(keys), dtype=np.int64) * 3 + 7
    ours, theirs = trained(keys, 120, metric), trained(keys, 120, metric)
    assigner = ListAssigner(ours)
    nearest = ours.quantizer.search(keys, 1)[1][:, 0]
    assert (assigner.assign(keys) == nearest).mean() >= 0.97
    again = ListAssigner(trained(keys, 120, metric))
    np.testing.assert_array_equal(again.assign(keys), assigner.assign(keys))
    assigner.add(ids, keys)
    theirs.add_with_ids(keys, ids)
    assert ours.ntotal == len(keys)
    np.testing.assert_array_equal(np.stack([ours.reconstruct(int(i)) for i in ids]), keys)
    assert recall_at_10(ours, keys, metric) >= recall_at_10(theirs, keys, metric) - 0.02


@pytest.mark.parametrize("kind", ["ivf", "ivfpq"])
def test_a_store_with_many_lists_files_its_writes_through_the_groups(tmp_path, monkeypatch, kind):
    """An IVF store of 21,564 digit keys (trained at 10,000 into 256 lists), the assigner
    on from 64 lists: its writes after training go through it (an IVF-PQ store's do not);
    a search finds nearly every sampled key as its own nearest memory, verify passes, and
    after a delete and a reopen the index holds exactly the database's ids and finds them."""
    from stores import EpisodicStore

    monkeypatch.setattr(ivf_assign, "MIN_LISTS", 64)
    keys = np.concatenate([digits() + np.float32(k) for k in range(12)])
    values = np.zeros((len(keys), 4), np.float32)
    labels = np.arange(len(keys)) % 10
    probe = np.arange(0, len(keys), 37)

    def check(st, n):
        np.testing.assert_array_equal(st.index.ids(), np.arange(3, n))
        assert (st.search(keys[probe], k=1).ids[:, 0] == probe).mean() >= 0.97
        assert st.verify()["ok"]

    with EpisodicStore.create(tmp_path / "m", dim=64, value_shape=(4,), index=kind) as st:
        for start in range(0, len(keys), 3000):
            end = start + 3000
            st.write(keys[start:end], values[start:end], labels[start:end])
        assert st.index.index.nlist >= 64
        # IVF-PQ codes are residuals of the nearest list: filed by FAISS's own add
        assert (st.index._assigner is not None) == (kind == "ivf")
        st.delete(np.arange(3))
        probe = probe[probe >= 3]
        check(st, len(keys))
    with EpisodicStore.open(tmp_path / "m") as st:
        check(st, len(keys))
