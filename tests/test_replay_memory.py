"""The agent's RAM memory against the real store it flushes to (SQLite file + FAISS)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lifelong.learner.replay_memory import ReplayMemory
from stores import EpisodicStore, StoreError

SHAPE, CLASSES, DIM = (1, 4, 4), 10, 16


def keys_of(x: torch.Tensor) -> np.ndarray:
    return x.reshape(len(x), -1).numpy().copy()


def loss_of(slots: np.ndarray) -> np.ndarray:
    return np.asarray(slots, float) / 100


def logits_of(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(len(x), -1)[:, :CLASSES] * 3


def make_store(tmp_path, capacity=50, name="mem") -> EpisodicStore:
    return EpisodicStore.create(
        tmp_path / name, dim=DIM, value_shape=SHAPE, capacity=capacity, seed=0
    )


def stream_batch(rng, b: int, n: int = 10, classes: int = CLASSES):
    x = torch.from_numpy(rng.random((n, *SHAPE), dtype=np.float32))
    y = torch.from_numpy(rng.integers(0, classes, n))
    return x, y, b * n


def test_store_mirrors_memory_after_each_flush(tmp_path):
    rng = np.random.default_rng(0)
    mem = ReplayMemory(50, SHAPE, CLASSES, "reservoir", seed=1)
    with make_store(tmp_path) as store:
        for b in range(200):
            x, y, pos = stream_batch(rng, b)
            mem.add(x, y, b % 3, b // 40, pos, logits_of(x))
            if b % 17 == 0:
                mem.flush_to_store(store, keys_of, loss_of)
        assert mem.pending()
        mem.flush_to_store(store, keys_of, loss_of)
        assert not mem.pending() and len(mem) == 50 and mem.seen == 2000
        ids = mem.store_id[: len(mem)]
        assert sorted(ids.tolist()) == store.catalog.ids.tolist()  # evictions reached it
        assert store.stats()["seen"] == 2000  # the stream's count, not the writes'

        got = store.fetch(ids)
        assert np.array_equal(got.values, mem.x[:50].numpy())
        assert np.array_equal(got.labels, mem.y[:50].numpy())
        assert np.array_equal(got.tasks, mem.task[:50].numpy())
        assert np.array_equal(got.positions, mem.position[:50])
        assert np.allclose(store.keys_of(ids), keys_of(mem.x[:50]))
        assert store.verify()["ok"]
        # reservoir over 2,000 positions: spread over the whole stream, not the latest
        assert 700 < mem.position[:50].mean() < 1300
        assert torch.equal(mem.logits[:50], logits_of(mem.x[:50]))


def test_class_balanced_writes(tmp_path):
    rng = np.random.default_rng(1)
    mem = ReplayMemory(40, SHAPE, CLASSES, "class-balanced", seed=0)
    for c in range(4):  # classes arrive one after another, as in a split stream
        for b in range(5):
            x, _, pos = stream_batch(rng, c * 5 + b)
            mem.add(x, torch.full((10,), c), None, c, pos, None)
    assert np.bincount(mem.y[: len(mem)].numpy()).tolist() == [10, 10, 10, 10]
    assert (mem.logits == 0).all()  # no logits asked for, none kept


def test_flush_with_rekey_keys_every_memory_in_one_transaction(tmp_path):
    rng = np.random.default_rng(5)
    mem = ReplayMemory(30, SHAPE, CLASSES, "reservoir", seed=0)
    with make_store(tmp_path) as store:
        for b in range(3):
            mem.add(*stream_batch(rng, b)[:2], None, 0, b * 10, None)
        mem.flush_to_store(store, keys_of, loss_of)
        mem.replay(np.arange(5))
        for b in range(3, 6):  # evicts some flushed memories, adds new ones
            mem.add(*stream_batch(rng, b)[:2], None, 0, b * 10, None)

        def drifted(x):  # a new encoder: every key moves
            return keys_of(x) * 2 + 1

        version = store.stats()["version"]
        mem.flush_to_store(store, drifted, loss_of, keys=drifted(mem.x[: len(mem)]))
        ids = mem.store_id[: len(mem)]
        assert sorted(ids.tolist()) == store.catalog.ids.tolist()
        assert np.allclose(store.keys_of(ids), drifted(mem.x[: len(mem)]))
        assert store.stats()["version"] == version + 2  # write and rekey, one commit
        assert not mem.pending() and store.verify()["ok"]
        # a failed flush leaves the memory pending, to be flushed again
        before = store.catalog.ids.tolist()
        mem.add(*stream_batch(rng, 6)[:2], None, 0, 60, None)
        with pytest.raises(StoreError):
            mem.flush_to_store(
                store, lambda x: keys_of(x)[:, :3], loss_of
            )  # keys of the wrong size
        assert mem.pending() and store.catalog.ids.tolist() == before
        mem.flush_to_store(store, keys_of, loss_of)
        assert not mem.pending() and len(store) == 30 and store.verify()["ok"]


def test_replay_counts_and_losses_reach_the_store(tmp_path):
    rng = np.random.default_rng(2)
    mem = ReplayMemory(30, SHAPE, CLASSES, "reservoir", seed=0)
    with make_store(tmp_path) as store:
        x, y, pos = stream_batch(rng, 0, 20)
        mem.add(x, y, 0, 0, pos, None)
        draws = [mem.sample(8, "class-balanced", np.random.default_rng(i)) for i in range(5)]
        for slots in draws:
            mem.replay(slots)  # replayed before they were ever flushed
        mem.flush_to_store(store, keys_of, loss_of)
        recs = {r["id"]: r for r in store.records(mem.store_id[:20])}
        expect = np.bincount(np.concatenate(draws), minlength=20)
        for slot in range(20):
            rec = recs[int(mem.store_id[slot])]
            assert rec["replay_count"] == expect[slot]
            if expect[slot]:
                assert rec["last_loss"] == pytest.approx(slot / 100)


def test_state_round_trip_through_the_store(tmp_path):
    rng = np.random.default_rng(3)
    mem = ReplayMemory(25, SHAPE, CLASSES, "reservoir", seed=4)
    with make_store(tmp_path) as store:
        for b in range(12):
            x, y, _ = stream_batch(rng, b)
            mem.add(x, y, 1, 0, b * 10, logits_of(x))
        with pytest.raises(RuntimeError, match="flush"):
            mem.state_dict()
        mem.flush_to_store(store, keys_of, loss_of)
        state = mem.state_dict()
        back = ReplayMemory(25, SHAPE, CLASSES, "reservoir", seed=99)
        back.load_state_dict(state, store)
        for field in ("x", "y", "task", "logits"):
            assert torch.equal(getattr(back, field), getattr(mem, field))
        assert np.array_equal(back.store_id, mem.store_id) and back.seen == mem.seen
        # the write policy's randomness continues where it was
        nxt = stream_batch(rng, 12)
        mem.add(*nxt[:2], 1, 0, 120, logits_of(nxt[0]))
        back.add(*nxt[:2], 1, 0, 120, logits_of(nxt[0]))
        assert torch.equal(back.x, mem.x)


def test_store_too_small_for_the_memory_is_an_error(tmp_path):
    rng = np.random.default_rng(4)
    mem = ReplayMemory(30, SHAPE, CLASSES, "reservoir", seed=0)
    with make_store(tmp_path, capacity=20) as store:
        x, y, pos = stream_batch(rng, 0, 30)
        mem.add(x, y, 0, 0, pos, None)
        with pytest.raises(StoreError, match="capacity"):
            mem.flush_to_store(store, keys_of, loss_of)


def test_refresh_logits_renews_only_that_experience(tmp_path):
    rng = np.random.default_rng(5)
    mem = ReplayMemory(40, SHAPE, CLASSES, "reservoir", seed=0)
    for e in range(2):
        x, y, pos = stream_batch(rng, e, 20)
        mem.add(x, y, None, e, pos, logits_of(x))
    before = mem.logits.clone()
    mem.refresh_logits(1, torch.full((len(mem), CLASSES), 7.0))
    new = mem.experience[:40] == 1
    assert (mem.logits[torch.from_numpy(new)] == 7).all()
    assert torch.equal(mem.logits[torch.from_numpy(~new)], before[torch.from_numpy(~new)])


def test_balanced_draws_see_every_write():
    rng = np.random.default_rng(6)
    mem = ReplayMemory(100, SHAPE, CLASSES, "reservoir", seed=0)
    x, _, _ = stream_batch(rng, 0, 20)
    mem.add(x, torch.zeros(20, dtype=torch.int64), None, 0, 0, None)
    draw = np.random.default_rng(0)
    assert set(mem.y[mem.sample(10, "class-balanced", draw)].tolist()) == {0}
    mem.add(x, torch.ones(20, dtype=torch.int64), None, 1, 20, None)
    labels = mem.y[mem.sample(20, "class-balanced", draw)]
    assert (labels == 1).sum() >= 5 and (labels == 0).sum() >= 5  # the new class is drawn
