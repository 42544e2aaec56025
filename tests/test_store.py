"""EpisodicStore on real SQLite files and real FAISS indexes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from stores import EpisodicStore, StoreError
from tests.store_helpers import DIM, VSHAPE, batch

ROOT = Path(__file__).resolve().parents[1]


def make(tmp_path, **kw) -> EpisodicStore:
    return EpisodicStore.create(tmp_path / "mem", dim=DIM, value_shape=VSHAPE, **kw)


def brute_force(keys: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    d = ((q[:, None, :] - keys[None, :, :]) ** 2).sum(-1)
    return ids[np.argsort(d, axis=1, kind="stable")[:, :k]]


def test_round_trip_every_field(tmp_path):
    rng = np.random.default_rng(0)
    keys, values, labels = batch(rng, 50)
    with make(tmp_path) as st:
        r = st.write(
            keys,
            values,
            labels,
            tasks=3,
            experiences=np.arange(50) % 5,
            positions=np.arange(100, 150),
        )
        st.record_replay(r.ids[:5], np.linspace(0.1, 0.5, 5))
    with EpisodicStore.open(tmp_path / "mem") as st:
        got = st.fetch(r.ids)
        assert np.array_equal(got.values, values)
        assert np.array_equal(st.keys_of(r.ids), keys)
        assert got.labels.tolist() == labels.tolist()
        assert (got.tasks == 3).all()
        assert got.experiences.tolist() == (np.arange(50) % 5).tolist()
        assert got.positions.tolist() == list(range(100, 150))
        recs = st.records(r.ids[:6])
        assert [x["replay_count"] for x in recs] == [1, 1, 1, 1, 1, 0]
        assert recs[4]["last_loss"] == pytest.approx(0.5) and recs[5]["last_loss"] is None
        assert all(abs(x["written_at"] - time.time()) < 600 for x in recs)


def test_task_free_rows_have_no_task(tmp_path):
    rng = np.random.default_rng(1)
    with make(tmp_path) as st:
        r = st.write(*batch(rng, 5))
        assert st.records(r.ids)[0]["task"] is None
        assert (st.fetch(r.ids).tasks == -1).all()


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_search_matches_brute_force(tmp_path, kind):
    rng = np.random.default_rng(2)
    keys, values, labels = batch(rng, 600)
    with make(tmp_path, index=kind, train_min=400) as st:
        ids = st.write(keys, values, labels, tasks=np.arange(600) // 200).ids
        q = rng.standard_normal((20, DIM)).astype(np.float32)
        res = st.search(q, 5)
        want = brute_force(keys, ids, q, 5)
        recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(res.ids, want, strict=True)])
        assert recall == 1.0 if kind == "flat" else recall >= 0.9
        # filtered searches are exact for every index kind
        for where, mask in [
            ({"task": 1}, np.arange(600) // 200 == 1),
            ({"label": [0, 2]}, np.isin(labels, [0, 2])),
            ({"position": (100, 250)}, (np.arange(600) >= 100) & (np.arange(600) < 250)),
        ]:
            res = st.search(q, 5, where=where)
            assert np.array_equal(res.ids, brute_force(keys[mask], ids[mask], q, 5)), where
        assert np.array_equal(res.labels, labels[res.ids])


def test_search_returns_fields_and_pads_short_results(tmp_path):
    rng = np.random.default_rng(3)
    keys, values, labels = batch(rng, 3)
    with make(tmp_path) as st:
        st.write(keys, values, labels, tasks=[0, 1, 1])
        res = st.search(keys[0], 5, where={"task": 1})
        assert res.ids[0, :2].tolist() != [-1, -1] and res.ids[0, 2:].tolist() == [-1] * 3
        assert set(res.tasks[0, :2].tolist()) == {1}
        assert st.search(keys[0], 2, where={"experience": 9}).ids.tolist() == [[-1, -1]]


def test_sampling_policies_balance(tmp_path):
    rng = np.random.default_rng(4)
    with make(tmp_path) as st:
        # 900 of class 0 in task 0, 100 spread over classes 1..3 in task 1
        k, v, _ = batch(rng, 1000)
        labels = np.r_[np.zeros(900, int), rng.integers(1, 4, 100)]
        st.write(k, v, labels, tasks=(labels > 0).astype(int))
        uni = st.sample(64, rng=rng)
        assert len(set(uni.ids.tolist())) == 64
        draws = np.concatenate([st.sample(40, "class-balanced", rng=rng).labels for _ in range(50)])
        share = np.bincount(draws, minlength=4) / len(draws)
        assert np.all(np.abs(share - 0.25) < 0.05), share
        draws = np.concatenate([st.sample(40, "task-balanced", rng=rng).tasks for _ in range(50)])
        assert abs(np.mean(draws) - 0.5) < 0.06
        uni_share = np.mean(np.concatenate([st.sample(40, rng=rng).labels for _ in range(50)]) == 0)
        assert uni_share > 0.8
        assert set(st.sample(30, rng=rng, where={"label": 2}).labels.tolist()) == {2}
        assert len(st.sample(5000, rng=rng)) == 1000


def test_same_seed_same_sample(tmp_path):
    rng = np.random.default_rng(5)
    with make(tmp_path) as st:
        st.write(*batch(rng, 200))
        a = st.sample(16, "class-balanced", rng=np.random.default_rng(9)).ids
        b = st.sample(16, "class-balanced", rng=np.random.default_rng(9)).ids
        assert np.array_equal(a, b)


def test_reservoir_eviction_keeps_capacity_and_is_uniform_over_stream(tmp_path):
    rng = np.random.default_rng(6)
    with make(tmp_path, capacity=200, seed=1) as st:
        for _ in range(100):
            st.write(*batch(rng, 20))
        assert len(st) == 200 and st.stats()["seen"] == 2000
        assert st.verify()["ok"]
        pos = st.fetch(st.catalog.ids, with_values=False).positions
        # uniform over 0..1999: mean ~1000, every quarter of the stream represented
        assert abs(pos.mean() - 1000) < 120
        assert all(np.sum((pos >= q * 500) & (pos < (q + 1) * 500)) >= 30 for q in range(4))
    with EpisodicStore.open(tmp_path / "mem") as st:
        assert len(st) == 200 and st.verify()["ok"]
        assert (st.search(np.zeros(DIM), 300).ids[0] >= 0).sum() == 200


def test_class_balanced_eviction(tmp_path):
    rng = np.random.default_rng(7)
    with make(tmp_path, capacity=40, eviction_policy="class-balanced") as st:
        for c in range(4):  # classes arrive one after another, as in a split stream
            k, v, _ = batch(rng, 50)
            st.write(k, v, np.full(50, c))
        assert st.stats()["labels"] == {0: 10, 1: 10, 2: 10, 3: 10}
        assert st.verify()["ok"]


def test_same_seed_same_eviction(tmp_path):
    def run(folder):
        rng = np.random.default_rng(8)
        with EpisodicStore.create(folder, dim=DIM, value_shape=VSHAPE, capacity=30, seed=4) as st:
            for _ in range(10):
                st.write(*batch(rng, 13))
            return st.catalog.ids.copy()

    assert np.array_equal(run(tmp_path / "a"), run(tmp_path / "b"))


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_rekey_moves_memories(tmp_path, kind):
    rng = np.random.default_rng(9)
    keys, values, labels = batch(rng, 100)
    with make(tmp_path, index=kind) as st:
        ids = st.write(keys, values, labels).ids
        new = keys[:10] + 100.0
        st.rekey(ids[:10], new)
        assert np.array_equal(st.keys_of(ids[:10]), new)
        assert st.search(new[3], 1).ids[0, 0] == ids[3]
        assert st.verify()["ok"]
    with EpisodicStore.open(tmp_path / "mem") as st:
        assert st.search(new[3], 1).ids[0, 0] == ids[3] and st.verify()["ok"]


def test_delete_from_both(tmp_path):
    rng = np.random.default_rng(10)
    keys, values, labels = batch(rng, 50)
    with make(tmp_path, index="hnsw") as st:
        ids = st.write(keys, values, labels).ids
        st.delete(ids[:5])
        assert len(st) == 45 and st.verify()["ok"]
        assert not set(st.search(keys[:5], 3).ids.ravel()) & set(ids[:5].tolist())
        with pytest.raises(StoreError, match="no memories with ids"):
            st.delete([ids[0]])


def test_write_with_evict_replaces_in_one_transaction(tmp_path):
    rng = np.random.default_rng(21)
    with make(tmp_path, capacity=10) as st:
        first = st.write(*batch(rng, 10)).ids
        version = st.stats()["version"]
        with pytest.raises(StoreError, match="no memories with ids"):
            st.write(*batch(rng, 3), evict=[first[0], 999])
        assert st.catalog.ids.tolist() == first.tolist()  # refused whole: nothing changed
        assert st.stats()["version"] == version
        res = st.write(*batch(rng, 3), evict=first[:3])
        # the evicted made room, so the eviction policy kept all three new ones
        assert len(res.ids) == 3 and sorted(res.evicted.tolist()) == first[:3].tolist()
        assert st.catalog.ids.tolist() == first[3:].tolist() + res.ids.tolist()
        assert st.verify()["ok"]
        st.write(*batch(rng, 0), stream_seen=500)  # a caller's own write policy saw 500
        assert st.stats()["seen"] == 500
        with pytest.raises(StoreError, match="must not go back"):
            st.write(*batch(rng, 1), stream_seen=499)
        assert st.stats()["seen"] == 500 and len(st) == 10


def test_transaction_lands_whole_or_not_at_all(tmp_path):
    rng = np.random.default_rng(22)
    with make(tmp_path) as st:
        first = st.write(*batch(rng, 6)).ids
        keys_before = st.keys_of(first)
        with pytest.raises(StoreError, match="no memories with ids"), st.transaction():
            st.write(*batch(rng, 4))
            st.rekey(first[:2], np.zeros((2, DIM), np.float32))
            st.record_replay(first[:1], [0.5])
            st.delete([12345])  # fails: everything above must roll back
        # the database and the RAM catalog and index are as before
        assert st.catalog.ids.tolist() == first.tolist() and st.index.ntotal == 6
        assert np.array_equal(st.keys_of(first), keys_before)
        assert st.records(first[:1])[0]["replay_count"] == 0
        assert st.verify()["ok"]
        new_keys = rng.standard_normal((2, DIM)).astype(np.float32)
        with st.transaction():
            added = st.write(*batch(rng, 4)).ids
            st.rekey(first[:2], new_keys)
            # counts: an id listed twice counts twice; the loss listed last is kept
            st.record_replay([first[0], added[0], first[0]], [0.1, 0.2, 0.3], counts=[1, 2, 5])
        assert len(st) == 10 and st.verify()["ok"]
        assert np.array_equal(st.search(new_keys, 1).ids[:, 0], first[:2])
    with EpisodicStore.open(tmp_path / "mem") as st:
        recs = {r["id"]: r for r in st.records([first[0], added[0]])}
        assert recs[int(first[0])]["replay_count"] == 6
        assert recs[int(first[0])]["last_loss"] == pytest.approx(0.3)
        assert recs[int(added[0])]["replay_count"] == 2


def test_schema_1_store_is_upgraded_by_its_first_writer(tmp_path):
    """Schema 1 kept payloads in the memories rows; a writer moves them to their own table."""
    rng = np.random.default_rng(23)
    keys, values, labels = batch(rng, 7)
    with make(tmp_path) as st:
        ids = st.write(keys, values, labels).ids
    db = sqlite3.connect(tmp_path / "mem" / "memory.sqlite")  # rewrite it as schema 1 had it
    db.executescript(
        "ALTER TABLE memories ADD COLUMN value BLOB;"
        "UPDATE memories SET value = (SELECT value FROM payloads WHERE payloads.id = memories.id);"
        "DROP TABLE payloads;"
        "UPDATE meta SET value = '1' WHERE name = 'schema_version';"
    )
    db.close()
    with pytest.raises(StoreError, match="schema version 1; open it once for writing"):
        EpisodicStore.open(tmp_path / "mem", readonly=True)
    with EpisodicStore.open(tmp_path / "mem") as st:
        assert st.meta["schema_version"] == 2 and st.verify()["ok"]
        assert np.array_equal(st.fetch(ids).values, values)
        st.write(*batch(rng, 2))
    with EpisodicStore.open(tmp_path / "mem", readonly=True) as st:
        assert len(st) == 9 and np.array_equal(st.fetch(ids).values, values)
        columns = [r[1] for r in st._conn.exec_driver_sql("PRAGMA table_info(memories)")]
        assert "value" not in columns


def test_new_stores_use_16k_pages_and_older_4k_stores_still_work(tmp_path):
    """Page size is fixed when a database is created: new ones get 16 KiB pages (a flush of
    payloads writes a quarter of the pages), snapshots keep it, and a store created with
    SQLite's default 4 KiB pages opens, reads and writes as before."""

    def page_size(path) -> int:
        db = sqlite3.connect(path)
        try:
            return db.execute("PRAGMA page_size").fetchone()[0]
        finally:
            db.close()

    rng = np.random.default_rng(29)
    keys, values, labels = batch(rng, 40)
    with make(tmp_path) as st:
        st.write(keys, values, labels)
        st.snapshot(tmp_path / "copy.sqlite")
    assert page_size(tmp_path / "mem" / "memory.sqlite") == 16384
    assert page_size(tmp_path / "copy.sqlite") == 16384

    old = sqlite3.connect(tmp_path / "copy.sqlite", isolation_level=None)  # as 4 KiB pages
    old.executescript("PRAGMA journal_mode=DELETE; PRAGMA page_size=4096; VACUUM;")
    old.close()
    os.replace(tmp_path / "copy.sqlite", tmp_path / "old.sqlite")
    assert page_size(tmp_path / "old.sqlite") == 4096
    EpisodicStore.restore(tmp_path / "mem", tmp_path / "old.sqlite")
    with EpisodicStore.open(tmp_path / "mem") as st:
        assert st.verify()["ok"] and len(st) == 40
        ids = st.write(*batch(rng, 5)).ids
        assert len(st.fetch(ids).values) == 5
    assert page_size(tmp_path / "mem" / "memory.sqlite") == 4096


def test_snapshot_for_later_keeps_the_store_as_it_was(tmp_path):
    """``snapshot()`` without a destination (what checkpoints take) holds the database as it
    was: writes and deletes after it are not in the copy written later, from another
    thread; inside a transaction it is refused (the copy would miss the open writes)."""
    import threading

    from stores.store import write_snapshot

    rng = np.random.default_rng(31)
    with make(tmp_path) as st:
        first = st.write(*batch(rng, 10)).ids
        snap = st.snapshot()
        st.write(*batch(rng, 5))
        st.delete(first[:3])
        copier = threading.Thread(target=write_snapshot, args=(snap, tmp_path / "copy.sqlite"))
        copier.start()
        copier.join()
        snap.close()
        with pytest.raises(StoreError, match="inside transaction"), st.transaction():
            st.snapshot()
        assert len(st) == 12
    EpisodicStore.restore(tmp_path / "back", tmp_path / "copy.sqlite")
    with EpisodicStore.open(tmp_path / "back") as back:
        assert back.verify()["ok"] and sorted(back.catalog.ids.tolist()) == sorted(first.tolist())


def test_reopen_catches_up_on_rows_newer_than_index_file(tmp_path):
    rng = np.random.default_rng(11)
    with make(tmp_path) as st:
        st.write(*batch(rng, 30))
        st.save_index()
        later = st.write(*batch(rng, 10)).ids
        st.close(save=False)  # the index file now covers only the first 30
    with EpisodicStore.open(tmp_path / "mem") as st:
        assert len(st) == 40 and st.index.ntotal == 40 and st.verify()["ok"]
        assert st.search(st.keys_of(later[:1]), 1).ids[0, 0] == later[0]


# -- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, message",
    [
        (lambda k, v, y: (k[:, :5], v, y), r"keys: expected shape \(n, 8\)"),
        (
            lambda k, v, y: (np.where(np.arange(4)[:, None] == 2, np.nan, k), v, y),
            "keys: row 2 has NaN or inf",
        ),
        (
            lambda k, v, y: (k, np.where(np.arange(4)[:, None, None] == 1, np.inf, v), y),
            "values: row 1 has NaN or inf",
        ),
        (lambda k, v, y: (k, v[:, :1], y), r"values: expected shape \(4, 2, 3\)"),
        (lambda k, v, y: (k, v, y[:3]), "labels: expected 4 entries"),
        (lambda k, v, y: (k, v, np.array([0.5, 1, 2, 3])), "labels: must be integers"),
    ],
)
def test_bad_writes_leave_store_untouched(tmp_path, args, message):
    rng = np.random.default_rng(12)
    with make(tmp_path) as st:
        st.write(*batch(rng, 10))
        before = st.stats()
        with pytest.raises(StoreError, match=message):
            st.write(*args(*batch(rng, 4)))
        assert st.stats() == before and st.verify()["ok"]


def test_unknown_filter_field(tmp_path):
    with make(tmp_path) as st:
        st.write(*batch(np.random.default_rng(0), 5))
        with pytest.raises(StoreError, match=r"unknown filter field\(s\) \['colour'\]"):
            st.search(np.zeros(DIM), 2, where={"colour": 1})
        with pytest.raises(StoreError, match="unknown filter field"):
            st.sample(2, where={"task; DROP TABLE memories": 1})
        with pytest.raises(StoreError, match="unknown sampling policy"):
            st.sample(2, "newest")


def test_missing_and_foreign_folders(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        EpisodicStore.open(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="is not a lifelong store"):
        EpisodicStore.open(tmp_path / "empty")
    make(tmp_path).close()
    with pytest.raises(StoreError, match="already holds a store"):
        make(tmp_path)


def test_corrupt_database_is_a_clear_error(tmp_path):
    make(tmp_path).close()
    db = tmp_path / "mem" / "memory.sqlite"
    for p in db.parent.glob("memory.sqlite-*"):
        p.unlink()
    db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a readable SQLite store database or is corrupt"):
        EpisodicStore.open(tmp_path / "mem")


def test_truncated_index_file_warns_and_rebuilds(tmp_path):
    rng = np.random.default_rng(13)
    with make(tmp_path) as st:
        keys = batch(rng, 40)[0]
        st.write(keys, *batch(rng, 40)[1:])
    idx = tmp_path / "mem" / "keys.faiss"
    idx.write_bytes(idx.read_bytes()[:-100])
    with EpisodicStore.open(tmp_path / "mem", readonly=True) as st:
        assert "truncated or corrupt" in st.verify()["index_file"]
    with pytest.warns(UserWarning, match="truncated or corrupt.*rebuilding the index"):
        st = EpisodicStore.open(tmp_path / "mem")
    assert len(st) == 40 and st.verify()["ok"]
    assert st.search(keys[7], 1).ids[0, 0] == 7
    st.close()
    assert EpisodicStore.open(tmp_path / "mem").verify()["index_file"] == "current"


def test_newer_schema_refused(tmp_path):
    make(tmp_path).close()
    con = sqlite3.connect(tmp_path / "mem" / "memory.sqlite")
    con.execute("UPDATE meta SET value='99' WHERE name='schema_version'")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="schema version 99.*upgrade lifelong"):
        EpisodicStore.open(tmp_path / "mem")


def test_second_writer_refused_reader_allowed(tmp_path):
    st = make(tmp_path)
    st.write(*batch(np.random.default_rng(0), 5))
    code = (
        "import sys; from stores import EpisodicStore, StoreError\n"
        "try:\n    EpisodicStore.open(sys.argv[1])\nexcept StoreError as e:\n"
        "    print('refused:', e)\n"
        "r = EpisodicStore.open(sys.argv[1], readonly=True); print('reader sees', len(r))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "mem")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "refused:" in out and f"is in use by pid {os.getpid()}" in out
    assert "reader sees 5" in out
    st.close()


def test_readonly_store_refuses_writes(tmp_path):
    make(tmp_path).close()
    with (
        EpisodicStore.open(tmp_path / "mem", readonly=True) as st,
        pytest.raises(StoreError, match="read-only"),
    ):
        st.write(*batch(np.random.default_rng(0), 2))


# -- processes ------------------------------------------------------------------------------
WRITER = """
import sys, numpy as np
from stores import EpisodicStore
from tests.store_helpers import batch, DIM, VSHAPE
st = EpisodicStore.create(sys.argv[1], dim=DIM, value_shape=VSHAPE)
rng = np.random.default_rng(0)
for b in range(100000):
    st.write(*batch(rng, 50), experiences=b)
    if b == 5:
        st.save_index()
    print(b, flush=True)
"""


def test_sigkill_during_writes_then_reopen(tmp_path):
    folder = tmp_path / "mem"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(folder)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    committed = -1
    for line in proc.stdout:
        committed = int(line)
        if committed >= 60:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    st = EpisodicStore.open(folder)
    report = st.verify()
    assert report["ok"], report
    exps = set(st.fetch(st.catalog.ids, with_values=False).experiences.tolist())
    assert set(range(committed + 1)) <= exps  # every batch reported committed is there
    assert len(st) % 50 == 0 and len(st) >= 50 * (committed + 1)  # no half batch
    st.close()


READER = """
import sys, json, numpy as np
from stores import EpisodicStore
from tests.store_helpers import DIM
st = EpisodicStore.open(sys.argv[1], readonly=True)
rng = np.random.default_rng(1)
sizes, errors = [], 0
for _ in range(150):
    try:
        st.refresh()
        n = len(st)
        res = st.search(rng.standard_normal(DIM), 5)
        b = st.sample(8, "class-balanced", rng=rng)
        assert (res.ids[0] >= 0).sum() == min(5, n) and b.values.shape[0] == min(8, n)
        sizes.append(n)
    except Exception as e:
        errors += 1
        print("ERR", repr(e), file=sys.stderr)
print(json.dumps({"sizes": sizes, "errors": errors}))
"""


def test_reader_process_while_writer_writes(tmp_path):
    rng = np.random.default_rng(14)
    st = make(tmp_path)
    st.write(*batch(rng, 20))
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(tmp_path / "mem")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while reader.poll() is None:
        st.write(*batch(rng, 20))
        if len(st) % 400 == 0:
            st.delete(st.catalog.ids[:10])
    out, err = reader.communicate()
    result = json.loads(out)
    assert result["errors"] == 0, err
    assert len(result["sizes"]) == 150 and result["sizes"][-1] > result["sizes"][0]
    st.close()


def test_class_balanced_draw_is_stratified(tmp_path):
    """A draw of n from k classes gives each n // k, and one more to n % k of them; a class
    too small gives all it has and the others make up the rest."""
    rng = np.random.default_rng(6)
    with make(tmp_path) as st:
        k, v, _ = batch(rng, 203)
        labels = np.r_[np.repeat(np.arange(10), 20), [10, 10, 10]]  # class 10 holds 3
        st.write(k, v, labels)
        for seed in range(20):
            draw = st.sample(11, "class-balanced", rng=np.random.default_rng(seed)).labels
            assert sorted(draw.tolist()) == list(range(11))  # every class, once
            counts = np.bincount(
                st.sample(60, "class-balanced", rng=np.random.default_rng(seed)).labels
            )
            assert counts[10] == 3 and set(counts[:10].tolist()) <= {5, 6}
            assert counts.sum() == 60


def test_a_full_disk_at_close_leaves_the_index_to_be_rebuilt(tmp_path, monkeypatch):
    """Closing saves the index file, a cache: on a full disk that is a warning, the lock is
    released, and the next open rebuilds the index from the committed database."""
    import errno

    from stores import key_index

    rng = np.random.default_rng(3)
    keys, values, labels = batch(rng, 20)
    st = make(tmp_path)
    ids = st.write(keys, values, labels).ids

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(key_index, "write_index_file", full)
    with pytest.warns(UserWarning, match="index file not saved .*rebuilds it"):
        st.close()
    monkeypatch.undo()
    with EpisodicStore.open(tmp_path / "mem") as again:  # the writer lock was released
        assert len(again) == 20
        hits = again.search(keys[:3], k=1)
        assert hits.ids[:, 0].tolist() == ids[:3].tolist()
