"""A new store's database appears whole: a reader beside its writer never sees one half made,
so a database without its settings is damage, which the memory commands name at once."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

import stores.sqlite
from stores import EpisodicStore, StoreCorrupt, StoreError, StoreNotReady
from stores.folder import DB_NAME
from tests.store_helpers import DIM, VSHAPE, batch


def create(folder):
    return EpisodicStore.create(folder, dim=DIM, value_shape=VSHAPE)


def test_a_reader_during_the_making_sees_no_database_then_a_whole_one(tmp_path, monkeypatch):
    folder = tmp_path / "mem"
    seen = []
    replace = os.replace

    def rename_in(src, dst):
        if os.path.basename(dst) != DB_NAME:  # os is shared: other files' renames pass
            return replace(src, dst)
        with pytest.raises(StoreNotReady, match="holds no"):  # nothing there yet
            EpisodicStore.open_reader(folder)
        seen.append(sorted(p.name for p in folder.iterdir()))
        replace(src, dst)

    monkeypatch.setattr(stores.sqlite.os, "replace", rename_in)
    with create(folder) as writer:
        assert len(seen) == 1 and DB_NAME not in seen[0]
        with EpisodicStore.open_reader(folder) as reader:  # made: settings and tables
            assert reader.meta["value_shape"] == list(VSHAPE)
            assert reader.stats()["memories"] == 0
        assert writer.meta["store_id"]
    left = sorted(p.name for p in folder.iterdir())
    assert not [n for n in left if n.endswith((".tmp", "-wal", "-shm"))], left


def test_a_making_killed_before_the_rename_leaves_no_store_and_the_next_one_is_made(
    tmp_path, monkeypatch
):
    folder = tmp_path / "mem"

    replace = os.replace

    def killed(src, dst):
        if os.path.basename(dst) != DB_NAME:
            return replace(src, dst)
        raise KeyboardInterrupt  # the process dies between the making and the rename

    monkeypatch.setattr(stores.sqlite.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        create(folder)
    assert not (folder / DB_NAME).exists()
    with pytest.raises(StoreError, match="not a lifelong store"):
        EpisodicStore.open(folder, readonly=True)
    monkeypatch.undo()
    # a temporary database a kill -9 left behind (no chance to remove it) is swept
    (folder / f".{DB_NAME}.abandoned.tmp").write_bytes(b"half a database")
    with create(folder) as st:
        assert st.stats()["memories"] == 0
    assert not list(folder.glob(f".{DB_NAME}.*"))


def test_a_database_without_settings_is_named_damaged_at_once(tmp_path):
    folder = tmp_path / "mem"
    create(folder).close()
    (folder / DB_NAME).write_bytes(b"")  # what no writer leaves now, even mid-creation
    with pytest.raises(StoreCorrupt):
        EpisodicStore.open(folder, readonly=True)


def test_a_disk_that_refuses_the_making_is_one_line_and_leaves_no_database(tmp_path, monkeypatch):
    def full(dest):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(stores.sqlite, "temp_file", full)
    with pytest.raises(StoreError, match="cannot make a store database in .*No space left"):
        create(tmp_path / "mem")
    assert not (tmp_path / "mem" / DB_NAME).exists()


def test_a_store_made_between_the_check_and_the_lock_is_never_replaced(tmp_path):
    folder = tmp_path / "mem"
    with create(folder) as st:
        st.write(*batch(np.random.default_rng(0), 3))
    with pytest.raises(StoreError, match="already holds a store"):  # create's check missed it
        stores.sqlite.make_database(folder, {"schema_version": 0})
    with EpisodicStore.open(folder, readonly=True) as st:
        assert st.stats()["memories"] == 3
