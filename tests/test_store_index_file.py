"""The index file carries the catalog: a store opens from it and reads only newer rows."""

from __future__ import annotations

import json
import multiprocessing
import struct
import warnings
import zlib

import faiss
import numpy as np
import pytest

from stores import EpisodicStore
from stores.catalog import Catalog
from stores.index_file import MAGIC1, read_index_file
from stores.key_index import IndexSpec, KeyIndex
from tests.store_helpers import DIM, VSHAPE, batch


def catalog_from_database(st: EpisodicStore) -> np.ndarray:
    rows = st._driver().execute(
        "SELECT id, label, coalesce(task, -1), coalesce(experience, -1), position "
        "FROM memories ORDER BY id"
    )
    return np.array(rows.fetchall(), np.int64).reshape(-1, len(Catalog.FIELDS)).T


def test_a_store_opens_from_the_saved_catalog_and_reads_only_rows_written_since(tmp_path):
    """Write 60 memories and close (the index file now holds the catalog); open, write 25 more,
    close without saving the index (as a kill would). Expect: the file's catalog is the first
    60 rows; on open the catalog is the database's, all 85 rows, and a search finds a memory
    written after the file was saved, with its label."""
    rng = np.random.default_rng(0)
    first, later = batch(rng, 60), batch(rng, 25)
    with EpisodicStore.create(tmp_path / "m", dim=DIM, value_shape=VSHAPE) as st:
        st.write(*first, tasks=np.arange(60) % 3)
    _, _, saved = read_index_file(tmp_path / "m" / "keys.faiss")
    assert saved is not None and saved.shape == (len(Catalog.FIELDS), 60)
    st = EpisodicStore.open(tmp_path / "m")
    new_ids = st.write(*later).ids
    st.close(save=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the file is adopted, not rebuilt
        with EpisodicStore.open(tmp_path / "m") as again:
            np.testing.assert_array_equal(again.catalog.columns(), catalog_from_database(again))
            hit = again.search(later[0][3:4], k=1)
            assert hit.ids[0, 0] == new_ids[3] and hit.labels[0, 0] == later[2][3]
            assert again.verify()["ok"]


def test_after_a_delete_the_catalog_is_rebuilt_from_the_database(tmp_path):
    """Save the index with 40 memories, then delete 10 and close without saving.
    Expect: the stale catalog in the file is not used; the open catalog matches the database."""
    rng = np.random.default_rng(1)
    with EpisodicStore.create(tmp_path / "m", dim=DIM, value_shape=VSHAPE) as st:
        ids = st.write(*batch(rng, 40)).ids
    st = EpisodicStore.open(tmp_path / "m")
    st.delete(ids[:10])
    st.close(save=False)
    with EpisodicStore.open(tmp_path / "m") as again:
        assert len(again) == 30
        np.testing.assert_array_equal(again.catalog.columns(), catalog_from_database(again))


def test_an_index_file_of_the_first_layout_is_still_read(tmp_path):
    """Rewrite keys.faiss in the first layout (header first, CRC-32, no catalog).
    Expect: it is adopted without a warning; the catalog comes from the database; the next
    save writes today's layout with the catalog."""
    rng = np.random.default_rng(2)
    keys, values, labels = batch(rng, 30)
    with EpisodicStore.create(tmp_path / "m", dim=DIM, value_shape=VSHAPE) as st:
        st.write(keys, values, labels)
        blob = faiss.serialize_index(st.index.index).tobytes()
        header = {
            "version": st.meta["version"],
            "max_id": int(st.catalog.ids[-1]),
            "store_id": st.meta["store_id"],
            "tombstones": [],
            "trained_ivf": False,
            "trained_size": 0,
            "spec": st.spec.__dict__,
            "crc32": zlib.crc32(blob),
            "size": len(blob),
        }
    raw = json.dumps(header).encode()
    (tmp_path / "m" / "keys.faiss").write_bytes(MAGIC1 + struct.pack("<Q", len(raw)) + raw + blob)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with EpisodicStore.open(tmp_path / "m") as st:
            assert st.search(keys[7], k=1).ids[0, 0] == 7
            st.index.coverage.version = -1  # make close save it again
    _, _, saved = read_index_file(tmp_path / "m" / "keys.faiss")
    assert saved is not None and saved.shape[1] == 30


@pytest.mark.parametrize("where", ["faiss", "catalog", "header"])
def test_a_flipped_byte_anywhere_in_the_file_means_a_rebuild(tmp_path, where):
    """Flip one byte in the FAISS bytes, in the catalog, or in the header.
    Expect: a warning naming the file, and the store rebuilt from the database, whole."""
    rng = np.random.default_rng(3)
    keys, values, labels = batch(rng, 50)
    with EpisodicStore.create(tmp_path / "m", dim=DIM, value_shape=VSHAPE) as st:
        st.write(keys, values, labels)
    path = tmp_path / "m" / "keys.faiss"
    data = bytearray(path.read_bytes())
    (hlen,) = struct.unpack("<Q", data[-8:])
    at = {"faiss": 200, "catalog": len(data) - 8 - hlen - 100, "header": len(data) - 8 - hlen}
    data[at[where]] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="keys.faiss.*rebuilding the index"):
        st = EpisodicStore.open(path.parent)
    with st:
        assert len(st) == 50 and st.search(keys[11], k=1).ids[0, 0] == 11
        np.testing.assert_array_equal(st.catalog.columns(), catalog_from_database(st))


def test_an_ivf_store_grows_retrains_reopens_and_rebuilds_with_every_key(tmp_path):
    """An IVF store (trained at 300 keys) written in batches to 4x that size (a retrain),
    reopened from its file, written on without a save, and re-indexed from the database in
    one bulk (trained once). Expect: at each step every key is in the index once, and a
    search finds each of a sample of keys as its own nearest memory."""
    rng = np.random.default_rng(4)
    keys, values, labels = batch(rng, 1500)

    def check(st, n):
        assert len(st) == n and st.index.ntotal == n
        np.testing.assert_array_equal(st.index.ids(), np.arange(n))
        probe = rng.choice(n, 20, replace=False)
        assert (st.search(keys[probe], k=1).ids[:, 0] == probe).mean() >= 0.9

    with EpisodicStore.create(
        tmp_path / "m", dim=DIM, value_shape=VSHAPE, index="ivf", train_min=200
    ) as st:
        for start in range(0, 1200, 150):
            st.write(keys[start : start + 150], values[start : start + 150], labels[start:][:150])
        assert st.index.trained_size == 1200  # trained at 300, retrained at 4x that
        check(st, 1200)
    st = EpisodicStore.open(tmp_path / "m")
    check(st, 1200)
    st.write(keys[1200:], values[1200:], labels[1200:])
    st.close(save=False)
    with EpisodicStore.open(tmp_path / "m") as st:
        check(st, 1500)
        st.reindex()
        assert st.index.trained_size == 1500  # one training, at the full size
        check(st, 1500)
        assert st.verify()["ok"]


def test_without_faiss_own_file_reader_the_index_streams_in_alike(tmp_path, monkeypatch):
    """The open reads FAISS's bytes with FAISS's own file reader where it can; without it
    (another platform, an older FAISS) they stream through Python. Expect: the same index
    either way, and the catalog after it read whole."""
    rng = np.random.default_rng(5)
    keys, values, labels = batch(rng, 80)
    with EpisodicStore.create(tmp_path / "m", dim=DIM, value_shape=VSHAPE) as st:
        st.write(keys, values, labels)
    native, _, cat_native = read_index_file(tmp_path / "m" / "keys.faiss")
    monkeypatch.delattr(faiss, "FileIOReader")
    streamed, _, cat_streamed = read_index_file(tmp_path / "m" / "keys.faiss")
    np.testing.assert_array_equal(cat_native, cat_streamed)
    assert native.ntotal == streamed.ntotal == 80
    np.testing.assert_array_equal(native.search(keys, 3)[1], streamed.search(keys, 3)[1])


def test_an_index_file_holding_other_ids_at_the_same_version_is_rebuilt(tmp_path):
    """A file whose coverage matches the database but whose ids do not (one id lost, a
    stranger in its place: the same count). Expect: the open warns that it disagrees,
    rebuilds from the database, and the index then holds exactly the database's ids."""
    rng = np.random.default_rng(6)
    keys, values, labels = batch(rng, 50)
    with EpisodicStore.create(tmp_path / "m", dim=DIM, value_shape=VSHAPE) as st:
        st.write(keys, values, labels)
    path = tmp_path / "m" / "keys.faiss"
    saved = KeyIndex.load(path, IndexSpec(dim=DIM))
    saved.remove(np.array([7]))
    saved.add(np.array([999]), keys[:1])
    saved.save(path, saved.coverage, saved.catalog_snapshot)
    with pytest.warns(UserWarning, match="disagrees"):
        st = EpisodicStore.open(tmp_path / "m")
    with st:
        np.testing.assert_array_equal(st.index.ids(), np.arange(50))
        assert st.search(keys[7], k=1).ids[0, 0] == 7


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_a_failed_commit_takes_the_batch_back_out_of_the_index(tmp_path, monkeypatch, kind):
    """A write of 1,500 keys adds them to the index on a thread beside its commit; the
    commit then fails (the metadata update raises). Expect: the error reaches the caller,
    the index holds only the earlier memories, and the next write lands and verifies."""
    rng = np.random.default_rng(7)
    first, second = batch(rng, 400), batch(rng, 1500)
    st = EpisodicStore.create(
        tmp_path / "m", dim=DIM, value_shape=VSHAPE, index=kind, train_min=300
    )
    st.write(*first)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    with monkeypatch.context() as m:
        m.setattr(st, "_set_meta", fail)
        with pytest.raises(OSError, match="disk full"):
            st.write(*second)
    assert len(st) == 400
    np.testing.assert_array_equal(st.index.ids(), np.arange(400))
    st.write(*second)
    with st:
        np.testing.assert_array_equal(st.index.ids(), np.arange(1900))
        assert st.verify()["ok"]


def _write_big_batch(folder: str) -> None:
    rng = np.random.default_rng(8)
    with EpisodicStore.create(folder, dim=DIM, value_shape=VSHAPE, index="ivf") as st:
        st.write(*batch(rng, 1500))
        assert len(st) == 1500 and st.index.ntotal == 1500


def test_a_forked_child_writes_big_batches_on_an_adding_thread_of_its_own(tmp_path):
    """The parent has used its adding thread (a write of 1,500 keys); a child forked after
    it does not have that thread. Expect: the child's own write of 1,500 keys lands (it
    starts an adding thread of its own instead of waiting on the parent's forever)."""
    _write_big_batch(str(tmp_path / "parent"))
    child = multiprocessing.get_context("fork").Process(
        target=_write_big_batch, args=(str(tmp_path / "child"),)
    )
    child.start()
    child.join(timeout=120)
    hung = child.is_alive()
    if hung:
        child.kill()
    assert not hung and child.exitcode == 0


def test_an_add_that_fails_after_the_commit_reloads_the_index_from_the_database(
    tmp_path, monkeypatch
):
    """The commit of 1,500 keys lands but their add beside it fails (once). Expect: the
    write returns (its rows are in the database: a retry would write them twice), and
    catalog and index, read again from the database, hold every memory."""
    rng = np.random.default_rng(9)
    st = EpisodicStore.create(tmp_path / "m", dim=DIM, value_shape=VSHAPE, index="ivf")
    st.write(*batch(rng, 100))
    keys, values, labels = batch(rng, 1500)
    real_add, failures = KeyIndex.add, []

    def add_failing_once(self, ids, new_keys):
        if not failures and len(ids) == 1500:
            failures.append(len(ids))
            raise MemoryError("no room for the lists")
        return real_add(self, ids, new_keys)

    monkeypatch.setattr(KeyIndex, "add", add_failing_once)
    result = st.write(keys, values, labels)
    assert failures == [1500] and len(result.ids) == 1500
    with st:
        assert len(st) == 1600
        np.testing.assert_array_equal(st.index.ids(), np.arange(1600))
        assert st.search(keys[42], k=1).ids[0, 0] == 142
        assert st.verify()["ok"]
