"""IVF-PQ: keys kept as a few bytes each, candidates ranked again by their stored keys."""

from __future__ import annotations

import numpy as np
import pytest

from stores import EpisodicStore
from stores.errors import StoreError

DIM, VSHAPE = 16, (4,)


def clustered(rng: np.random.Generator, n: int) -> np.ndarray:
    centres = np.random.default_rng(99).standard_normal((40, DIM)).astype(np.float32) * 3
    return centres[rng.integers(0, 40, n)] + rng.standard_normal((n, DIM)).astype(np.float32)


def exact_top(keys: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    d = ((q[:, None, :] - keys[None, :, :]) ** 2).sum(-1)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def write(st, keys, rng):
    values = rng.random((len(keys), *VSHAPE)).astype(np.float32)
    return st.write(keys, values, rng.integers(0, 5, len(keys))).ids


def recall(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(got, want)]))


def test_ivfpq_keeps_codes_and_ranks_candidates_by_stored_keys(tmp_path):
    """An IVF-PQ store of 3,000 clustered 16-d keys (4 bytes a key, trained at 1,000).
    Expect: the index holds codes, not floats; with refine 4 the top-10 recall against exact
    search is >= 0.9 and at least refine 1's; distances are the exact ones of the ids
    returned; verify compares codes exactly and is OK."""
    rng = np.random.default_rng(0)
    keys = clustered(rng, 3000)
    q = clustered(np.random.default_rng(1), 50)
    with EpisodicStore.create(
        tmp_path / "m",
        dim=DIM,
        value_shape=VSHAPE,
        index="ivfpq",
        train_min=1000,
        pq_m=4,
        nprobe=8,
    ) as st:
        for start in range(0, 3000, 500):
            write(st, keys[start : start + 500], rng)
        assert st.index.trained_ivf and st.index.index.code_size == 4
        want = exact_top(keys, q, 10)
        res = st.search(q, 10)
        refined = recall(res.ids, want)
        st.spec.refine = 1
        plain = recall(st.search(q, 10).ids, want)
        st.spec.refine = 4
        assert refined >= 0.9 and refined >= plain, (refined, plain)
        exact = ((keys[res.ids] - q[:, None, :]) ** 2).sum(-1)
        np.testing.assert_allclose(res.distances, exact, rtol=1e-4, atol=1e-4)
        assert st.verify()["ok"]


def test_ivfpq_grown_4x_retrains_from_the_database_and_reopens(tmp_path):
    """Write IVF-PQ keys past 4x its first training size, close, reopen, delete some.
    Expect: it was retrained from the database at 4x (trained_size grows); after reopening
    and a delete every key is in the index once and each key finds itself first."""
    rng = np.random.default_rng(2)
    keys = clustered(rng, 2400)
    with EpisodicStore.create(
        tmp_path / "m", dim=DIM, value_shape=VSHAPE, index="ivfpq", train_min=500, pq_m=8
    ) as st:
        for start in range(0, 2400, 300):
            write(st, keys[start : start + 300], rng)
        assert st.index.trained_size >= 2400  # trained at 600, retrained at 2,400
    with EpisodicStore.open(tmp_path / "m") as st:
        st.delete(np.arange(100))
        assert st.index.ntotal == len(st) == 2300
        np.testing.assert_array_equal(st.index.ids(), np.arange(100, 2400))
        probe = np.arange(100, 2400, 97)
        assert (st.search(keys[probe], 1).ids[:, 0] == probe).all()
        assert st.verify()["ok"]


def test_pq_bytes_must_divide_the_key_dimension(tmp_path):
    with pytest.raises(StoreError, match="pq_m must divide the key dimension 16, got 5"):
        EpisodicStore.create(tmp_path / "m", dim=DIM, value_shape=VSHAPE, index="ivfpq", pq_m=5)
