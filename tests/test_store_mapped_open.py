"""A large IVF index file opens mapped: searched at once, its owned copy loaded and checked on
a thread, and a file that fails that check replaced by a rebuild with nothing lost.

"Large" is lowered to any size here (``MAPPED_MIN_BYTES``), and the block checksums to 4 KB,
so a few thousand real keys in a real FAISS index exercise what ten million do."""

from __future__ import annotations

import json
import struct
import warnings

import faiss
import numpy as np
import pytest

from stores import EpisodicStore, index_file, mapped_index
from stores.index_file import MAGIC2
from tests.store_helpers import VSHAPE

DIM = 16


def clustered(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    centres = np.random.default_rng(99).standard_normal((40, DIM)).astype(np.float32) * 3
    keys = centres[rng.integers(0, 40, n)] + rng.standard_normal((n, DIM)).astype(np.float32)
    return keys, rng.random((n, *VSHAPE)).astype(np.float32), rng.integers(0, 5, n)


@pytest.fixture
def small_is_large(monkeypatch):
    monkeypatch.setattr(mapped_index, "MAPPED_MIN_BYTES", 1)
    monkeypatch.setattr(index_file, "BLOCK", 4096)


def make_store(path, kind: str = "ivf", n: int = 3000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    with EpisodicStore.create(path, dim=DIM, value_shape=VSHAPE, index=kind, train_min=1000) as st:
        for _ in range(n // 1000):
            st.write(*clustered(rng, 1000))
        return st.catalog.ids.copy()


def eager_results(path, queries: np.ndarray, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(mapped_index, "MAPPED_MIN_BYTES", 1 << 62)
        with EpisodicStore.open(path, readonly=True) as st:
            assert not st.index.settling
            raw = st.index.search(queries, 10)  # the index alone (IVF-PQ: before re-ranking)
            return raw, st.search(queries, k=10).ids


@pytest.mark.parametrize("kind", ["ivf", "ivfpq"])
def test_a_mapped_store_answers_as_one_read_whole_before_and_after_it_settles(
    tmp_path, small_is_large, monkeypatch, kind
):
    """Write 3,000 clustered keys to an IVF (or IVF-PQ) store and close it. Open it again
    (mapped): expect its lists mapped from the file, not loaded, and the same ids and
    distances for 20 queries as a store that read the file whole; the same once the loaded
    copy is swapped in; then a write, a delete and a verify work, and a reopen finds both."""
    ids = make_store(tmp_path / "m", kind)
    queries = clustered(np.random.default_rng(5), 20)[0]
    (want_dist, want_ids), want_store = eager_results(tmp_path / "m", queries, monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        st = EpisodicStore.open(tmp_path / "m")
    assert st.index.settling
    lists = faiss.downcast_InvertedLists(st.index.index.invlists)
    assert isinstance(lists, faiss.OnDiskInvertedLists) and lists.read_only
    got = st.index.search(queries, 10)  # the mapped lists themselves, not the copy
    np.testing.assert_array_equal(got[1], want_ids)
    np.testing.assert_allclose(got[0], want_dist, rtol=1e-5)
    st.settle()
    assert not st.index.settling
    owned = faiss.downcast_InvertedLists(st.index.index.invlists)
    assert isinstance(owned, faiss.ArrayInvertedLists)
    np.testing.assert_array_equal(st.search(queries, k=10).ids, want_store)
    new = st.write(*clustered(np.random.default_rng(6), 50)).ids
    st.delete(ids[:30])
    assert st.verify(sample=200)["ok"]
    st.close()
    with EpisodicStore.open(tmp_path / "m") as again:
        assert again.index.settling
        held = again.index.ids()  # read from the mapped lists
        assert np.isin(new, held).all() and not np.isin(ids[:30], held).any()
        assert len(held) == len(ids) - 30 + len(new)
        assert again.verify(sample=200)["ok"]


def test_a_write_waits_for_the_loaded_copy_and_never_touches_the_mapped_lists(
    tmp_path, small_is_large
):
    """Open mapped and write at once (the copy may still be loading). Expect: the write
    lands in the owned copy (the index no longer mapped), the file's keys are all still
    found, and the written key is its own nearest neighbour."""
    ids = make_store(tmp_path / "m")
    with EpisodicStore.open(tmp_path / "m") as st:
        assert st.index.settling
        keys, values, labels = clustered(np.random.default_rng(7), 5)
        new = st.write(keys, values, labels).ids
        assert not st.index.settling
        hit = st.search(keys, k=1)
        np.testing.assert_array_equal(hit.ids[:, 0], new)
        assert len(st.index.ids()) == len(ids) + 5


def test_a_store_opened_mapped_can_be_reindexed(tmp_path, small_is_large):
    """Open mapped (the catalog a read-only map of the file), then reindex as IVF-PQ and back
    to IVF: the rebuild reads the catalog's rows again with nothing new to add (this raised
    "assignment destination is read-only" on the mapped catalog).
    Expect: both rebuilds hold every id; a write after lands; verify ok."""
    ids = make_store(tmp_path / "m")
    with EpisodicStore.open(tmp_path / "m") as st:
        st.reindex("ivfpq")
        np.testing.assert_array_equal(np.sort(st.index.ids()), ids)
        st.reindex("ivf")
        np.testing.assert_array_equal(np.sort(st.index.ids()), ids)
        new = st.write(*clustered(np.random.default_rng(3), 5)).ids
        assert len(st) == len(ids) + 5 and new[0] > ids[-1]
        assert st.verify(sample=200)["ok"]


def test_a_reader_opened_mapped_catches_up_with_its_writer(tmp_path, small_is_large):
    """A reader opens mapped beside a writer that then writes 200 memories. Expect: the
    reader's next search finds them (its copy settled, the rows added) and its catalog holds
    every id the writer holds."""
    make_store(tmp_path / "m")
    writer = EpisodicStore.open(tmp_path / "m")
    reader = EpisodicStore.open(tmp_path / "m", readonly=True)
    assert reader.index.settling
    keys, values, labels = clustered(np.random.default_rng(8), 200)
    new = writer.write(keys, values, labels).ids
    hit = reader.search(keys[:10], k=1)
    np.testing.assert_array_equal(hit.ids[:, 0], new[:10])
    np.testing.assert_array_equal(reader.catalog.ids, writer.catalog.ids)
    reader.close()
    writer.close()


def flip_byte_in_lists(path) -> None:
    """Change one byte in the middle of the index's lists (after the head the open checks)."""
    raw = bytearray(path.read_bytes())
    (hlen,) = struct.unpack("<Q", raw[-8:])
    header = json.loads(raw[-8 - hlen : -8])
    end = len(MAGIC2) + header["size"]
    spot = end - header["list_bytes"] // 2
    raw[spot] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_lists_damaged_on_disk_are_found_by_the_loading_thread_and_rebuilt(
    tmp_path, small_is_large
):
    """Flip a byte inside the saved lists, where the open's head check does not look. Expect:
    the open succeeds mapped; the first write waits for the loading thread, whose checksum
    fails; a warning names the file and the rebuild; the write lands; every memory is there
    (verify ok); and the next open adopts a new, sound file without a warning."""
    ids = make_store(tmp_path / "m")
    flip_byte_in_lists(tmp_path / "m" / "keys.faiss")
    st = EpisodicStore.open(tmp_path / "m")
    assert st.index.settling
    with pytest.warns(UserWarning, match=r"keys\.faiss.*checksum.*rebuilding"):
        new = st.write(*clustered(np.random.default_rng(9), 10)).ids
    assert st.verify(sample=500)["ok"]
    np.testing.assert_array_equal(st.catalog.ids, np.concatenate([ids, new]))
    st.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with EpisodicStore.open(tmp_path / "m") as again:
            assert again.verify(sample=500)["ok"] and len(again) == len(ids) + 10


def test_a_damaged_head_is_refused_on_open_and_rebuilt(tmp_path, small_is_large):
    """Flip a byte in the index's first block (its settings and centroids). Expect: the open
    warns that the file is corrupt and rebuilds from the database; nothing is lost."""
    ids = make_store(tmp_path / "m")
    path = tmp_path / "m" / "keys.faiss"
    raw = bytearray(path.read_bytes())
    raw[len(MAGIC2) + 100] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match=r"keys\.faiss.*corrupt.*rebuilding"):
        st = EpisodicStore.open(tmp_path / "m")
    assert not st.index.settling
    np.testing.assert_array_equal(st.catalog.ids, ids)
    assert st.verify(sample=500)["ok"]
    st.close()


def test_closing_before_the_copy_settles_stops_its_thread(tmp_path, small_is_large):
    """Open mapped and close at once. Expect: the loading thread ends (cancelled, or done)
    and the store's file is untouched: the next open is mapped again and verifies."""
    make_store(tmp_path / "m")
    before = (tmp_path / "m" / "keys.faiss").stat().st_mtime_ns
    st = EpisodicStore.open(tmp_path / "m")
    loading = st.index._settling
    st.close()
    loading._thread.join(timeout=60)
    assert not loading._thread.is_alive()
    assert (tmp_path / "m" / "keys.faiss").stat().st_mtime_ns == before
    with EpisodicStore.open(tmp_path / "m") as again:
        assert again.index.settling and again.verify()["ok"]


def test_small_indexes_are_read_whole_and_keep_their_id_map(tmp_path):
    """Below the size worth mapping (the default), a saved IVF file is read whole as before,
    with FAISS's id map in it (a delete needs no rebuild of it)."""
    make_store(tmp_path / "m")
    with EpisodicStore.open(tmp_path / "m") as st:
        assert not st.index.settling
        assert st.index.index.direct_map.type == faiss.DirectMap.Hashtable
