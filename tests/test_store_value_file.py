"""The value file (values.bin): a cache of the values by offset, each slot checked.

Real SQLite stores and files throughout; the file is damaged, removed, swapped and
overwritten by hand, and every value read must still be the one written."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from stores.folder import VALUES_NAME
from stores.store import EpisodicStore
from stores.value_file import HEADER_BYTES, SLOTS_PER_CAPACITY
from tests.store_helpers import DIM, VSHAPE, batch

NBYTES = int(np.prod(VSHAPE)) * 4
RECORD = 16 + NBYTES


def _store(path, n=2_000, per_batch=250, **create):
    """A store offered n memories in batches of ``per_batch``; the values written, by id."""
    st = EpisodicStore.create(path, dim=DIM, value_shape=VSHAPE, **create)
    rng = np.random.default_rng(0)
    written = {}
    for _ in range(n // per_batch):
        keys, values, labels = batch(rng, per_batch)
        out = st.write(keys, values, labels)
        written.update(zip(out.ids.tolist(), values[out.kept], strict=True))
    return st, written


def _reads(st) -> dict | None:
    return st.stats()["value_reads"]


def test_draws_and_fetches_are_served_by_the_file_with_the_written_values(tmp_path):
    """2,000 memories, 20 draws of 64 and a fetch of 100.
    Expect: every value the one written; all 1,380 reads from the file, none from the
    database; verify ok; a fetch of more than a draw's worth (5,000 ids) still right."""
    st, written = _store(tmp_path / "s")
    rng = np.random.default_rng(1)
    for _ in range(20):
        got = st.sample(64, rng=rng)
        assert np.array_equal(got.values, np.stack([written[i] for i in got.ids.tolist()]))
    ids = np.arange(500, 600)
    assert np.array_equal(st.fetch(ids).values, np.stack([written[i] for i in ids]))
    assert _reads(st) == {"file": 20 * 64 + 100, "database": 0}
    assert st.verify(sample=200)["ok"]
    many = np.resize(np.arange(2_000), 5_000)  # repeats: above the file's limit
    assert np.array_equal(st.fetch(many).values, np.stack([written[i] for i in many.tolist()]))
    st.close()


def test_a_damaged_slot_is_read_from_the_database_and_written_back(tmp_path):
    """A byte flipped inside id 777's value in values.bin, behind the store's back.
    Expect: fetch(777) gives the written value, from the database (one miss); the slot is
    mended, so the next fetch is a hit; verify stays ok (a slot that fails its check is a
    miss, not damage)."""
    st, written = _store(tmp_path / "s")
    path = tmp_path / "s" / VALUES_NAME
    with open(path, "r+b") as f:
        f.seek(HEADER_BYTES + 777 * RECORD + 16 + 5)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert np.array_equal(st.fetch([777]).values[0], written[777])
    assert _reads(st) == {"file": 0, "database": 1}
    assert np.array_equal(st.fetch([777]).values[0], written[777])
    assert _reads(st) == {"file": 1, "database": 1}
    assert st.verify(sample=2_000)["ok"]
    st.close()


def test_verify_names_a_slot_that_vouches_for_another_value(tmp_path):
    """A slot rewritten with a wrong value and a valid check for it (as only a bug could).
    Expect: verify reports values.bin and the id; the store still opens."""
    st, written = _store(tmp_path / "s")
    st.value_file.put(np.array([42]), (written[42] + 1).reshape(1, -1))
    report = st.verify(sample=2_000)
    assert not report["ok"]
    assert any(VALUES_NAME in p and "42" in p for p in report["problems"]), report
    st.close()


def test_a_missing_or_foreign_value_file_is_started_again(tmp_path):
    """values.bin removed; then another store's values.bin (same shapes) put in its place.
    Expect: each reopen reads every value right (from the database, then from the file
    once written back), and the foreign file is never believed."""
    st, written = _store(tmp_path / "s")
    st.close()
    other, _ = _store(tmp_path / "other", n=500)
    other.close()
    ids = np.arange(0, 400, 7)
    (tmp_path / "s" / VALUES_NAME).unlink()
    for _ in range(2):
        with EpisodicStore.open(tmp_path / "s") as st:
            assert np.array_equal(st.fetch(ids).values, np.stack([written[i] for i in ids]))
            assert np.array_equal(st.fetch(ids).values, np.stack([written[i] for i in ids]))
            assert _reads(st) == {"file": len(ids), "database": len(ids)}
        shutil.copy(tmp_path / "other" / VALUES_NAME, tmp_path / "s" / VALUES_NAME)


def test_a_reader_uses_the_writers_file_and_reads_without_one(tmp_path):
    """A read-only store opened beside its writer, then one opened after values.bin is gone.
    Expect: the first reads the writer's file (all hits); the second has no value file and
    reads right from the database; neither creates or writes the file."""
    st, written = _store(tmp_path / "s")
    ids = np.arange(1_000, 1_064)
    with EpisodicStore.open(tmp_path / "s", readonly=True) as reader:
        assert np.array_equal(reader.fetch(ids).values, np.stack([written[i] for i in ids]))
        assert _reads(reader) == {"file": 64, "database": 0}
    st.close()
    (tmp_path / "s" / VALUES_NAME).unlink()
    with EpisodicStore.open(tmp_path / "s", readonly=True) as reader:
        assert np.array_equal(reader.fetch(ids).values, np.stack([written[i] for i in ids]))
        assert reader.stats()["value_reads"] is None
    assert not (tmp_path / "s" / VALUES_NAME).exists()


def test_with_a_capacity_the_file_stays_bounded_and_values_stay_right(tmp_path):
    """Capacity 10 under reservoir eviction, 4,000 memories offered 10 at a time: ids pass
    the file's 40 slots, so later ids take over slots of memories still held.
    Expect: values.bin no larger than its 40 slots; every memory held reads back as
    written, twice (the second time after the writer wrote back what it missed)."""
    st, written = _store(tmp_path / "s", n=4_000, per_batch=10, capacity=10)
    assert len(st) == 10
    size = (tmp_path / "s" / VALUES_NAME).stat().st_size
    assert size <= HEADER_BYTES + SLOTS_PER_CAPACITY * 10 * RECORD
    held = st.catalog.ids
    assert held.max() >= SLOTS_PER_CAPACITY * 10  # the slots did wrap
    for _ in range(2):
        got = st.fetch(held).values
        assert np.array_equal(got, np.stack([written[i] for i in held.tolist()]))
    st.close()


def test_deleted_values_are_zeroed_and_a_rolled_back_write_is_overwritten(tmp_path):
    """Delete ids 10-19; then a transaction whose write fails after it, and a write after.
    Expect: the deleted slots hold only zeros; the ids the rolled-back write used are given
    again and read back with the values of the write that landed."""
    st, written = _store(tmp_path / "s", n=500)
    st.delete(np.arange(10, 20))
    raw = (tmp_path / "s" / VALUES_NAME).read_bytes()
    assert raw[HEADER_BYTES + 10 * RECORD : HEADER_BYTES + 20 * RECORD] == bytes(10 * RECORD)
    rng = np.random.default_rng(5)
    with pytest.raises(RuntimeError), st.transaction():
        st.write(*batch(rng, 30))
        raise RuntimeError("the caller fails after its write")
    keys, values, labels = batch(rng, 30)
    out = st.write(keys, values, labels)
    assert out.ids[0] == 500  # the rolled-back write's ids, given again
    assert np.array_equal(st.fetch(out.ids).values, values)
    assert _reads(st)["database"] == 0
    st.close()


def test_an_open_reads_the_file_in_ahead_and_a_close_stops_it(tmp_path):
    """A store reopened. What the page cache then holds is the kernel's affair, so only the
    thread's own account is checked.
    Expect: the read-ahead thread finishes and says how long it took; closing joins it."""
    st, _ = _store(tmp_path / "s")
    st.close()
    st = EpisodicStore.open(tmp_path / "s")
    st.value_file.wait_read_ahead()
    assert st.value_file.read_ahead_s >= 0
    st.close()
    assert not st.value_file._reader.is_alive()


def test_values_reach_the_file_only_once_committed(tmp_path, monkeypatch):
    """Three ways a slot could be written for values that did not land: a transaction that
    fails after its write; a read inside a transaction (of its own uncommitted write); a
    copy into the file that fails after the commit (a full disk, simulated).
    Expect: the file holds nothing of the failed transaction; the one that commits copies
    its values in at its end; the failing copy is a warning, the write lands and reads
    right from the database, then from the file once written back."""
    st, written = _store(tmp_path / "s", n=250)
    rng = np.random.default_rng(7)
    path = tmp_path / "s" / VALUES_NAME
    size = path.stat().st_size
    with pytest.raises(RuntimeError), st.transaction():
        out = st.write(*batch(rng, 40))
        st.fetch(out.ids)  # read back inside: from the database, not written back
        raise RuntimeError("the caller fails after its write")
    assert path.stat().st_size == size
    keys, values, labels = batch(rng, 40)
    with st.transaction():
        out = st.write(keys, values, labels)
        assert path.stat().st_size == size
    assert np.array_equal(st.fetch(out.ids).values, values)
    assert _reads(st) == {"file": 40, "database": 40}  # the read inside the first

    def disk_full(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(st.value_file, "put", disk_full)
    keys, values, labels = batch(rng, 30)
    with pytest.warns(UserWarning, match="No space left"):
        out = st.write(keys, values, labels)
    monkeypatch.undo()
    assert np.array_equal(st.fetch(out.ids).values, values)
    assert np.array_equal(st.fetch(out.ids).values, values)
    assert _reads(st) == {"file": 40 + 30, "database": 40 + 30}
    st.close()


def test_slots_of_ids_not_committed_are_dropped_and_an_unreadable_file_is_passed_by(
    tmp_path, monkeypatch
):
    """Slots written for ids the database does not hold (as a power cut that loses the last
    commits but not the file's pages would leave); then a file whose reads fail (EIO).
    Expect: the writer's next open cuts the file back to the committed ids, and the ids
    given again read back as written then; reads that fail go to the database, and verify
    names the file."""
    st, _ = _store(tmp_path / "s", n=500)
    ghost = np.random.default_rng(3).random((20, NBYTES // 4)).astype(np.float32)
    st.value_file.put(np.arange(500, 520), ghost)
    st.close()
    with EpisodicStore.open(tmp_path / "s") as st:
        assert (tmp_path / "s" / VALUES_NAME).stat().st_size == HEADER_BYTES + 500 * RECORD
        keys, values, labels = batch(np.random.default_rng(4), 20)
        out = st.write(keys, values, labels)
        assert out.ids.tolist() == list(range(500, 520))
        assert np.array_equal(st.fetch(out.ids).values, values)

        def eio(*_):
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(st.value_file, "get", eio)
        assert np.array_equal(st.fetch(out.ids).values, values)
        report = st.verify(sample=100)
        assert any("values.bin unreadable" in p for p in report["problems"]), report
