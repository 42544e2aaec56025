"""The agent's working memory against the real store it flushes to (SQLite file + FAISS),
on every device the tests are given (the CPU; ``make test-gpu`` adds the GPUs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lifelong.learner.replay_memory import EXPERIENCE, POSITION, TASK, ReplayMemory
from lifelong.learner.replay_memory import _last_write_wins as last_write_wins
from stores import EpisodicStore, StoreError

SHAPE, CLASSES, DIM = (1, 4, 4), 10, 16
pytestmark = pytest.mark.device


def keys_of(x: torch.Tensor) -> np.ndarray:
    return x.reshape(len(x), -1).cpu().numpy().copy()


def loss_of(slots: np.ndarray) -> np.ndarray:
    return np.asarray(slots, float) / 100


def logits_of(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(len(x), -1)[:, :CLASSES] * 3


def make_store(tmp_path, capacity=50, name="mem") -> EpisodicStore:
    return EpisodicStore.create(
        tmp_path / name, dim=DIM, value_shape=SHAPE, capacity=capacity, seed=0
    )


class Feeder:
    """Batches of random examples and the uniforms a memory's draws and writes take, on a
    device, from seeded generators."""

    def __init__(self, mem: ReplayMemory, seed: int) -> None:
        self.mem, self.rng = mem, np.random.default_rng(seed)
        self.gen = torch.Generator(mem.device).manual_seed(seed)

    def batch(self, n: int = 10, classes: int = CLASSES):
        x = torch.from_numpy(self.rng.random((n, *SHAPE), dtype=np.float32))
        y = torch.from_numpy(self.rng.integers(0, classes, n))
        return x.to(self.mem.device), y.to(self.mem.device)

    def uniforms(self, n: int) -> torch.Tensor:
        return torch.rand(n, dtype=torch.float64, generator=self.gen, device=self.mem.device)

    def add(self, x, y, task, experience, position, logits) -> None:
        u = self.uniforms(self.mem.uniforms_per_write(len(y)))
        self.mem.add(x, y, task, experience, position, logits, u)

    def sample(self, n: int, policy: str) -> torch.Tensor:
        exponentials = -self.uniforms(len(self.mem)).log()
        return self.mem.sample(n, exponentials, self.mem.group_sizes(policy))


def test_store_mirrors_memory_after_each_flush(tmp_path, device):
    mem = ReplayMemory(50, SHAPE, CLASSES, "reservoir", device)
    feed = Feeder(mem, 0)
    with make_store(tmp_path) as store:
        for b in range(200):
            x, y = feed.batch()
            feed.add(x, y, b % 3, b // 40, b * 10, logits_of(x))
            if b % 17 == 0:
                mem.flush_to_store(store, keys_of, loss_of)
        assert mem.pending()
        mem.flush_to_store(store, keys_of, loss_of)
        assert not mem.pending() and len(mem) == 50 and mem.seen == 2000
        ids = mem.store_ids()
        assert sorted(ids.tolist()) == store.catalog.ids.tolist()  # evictions reached it
        assert store.stats()["seen"] == 2000  # the stream's count, not the writes'

        got = store.fetch(ids)
        info = mem.info[:50].cpu().numpy()
        assert np.array_equal(got.values, mem.x[:50].cpu().numpy())
        assert np.array_equal(got.labels, mem.y[:50].cpu().numpy())
        assert np.array_equal(got.tasks, info[:, TASK])
        assert np.array_equal(got.positions, info[:, POSITION])
        assert np.allclose(store.keys_of(ids), keys_of(mem.x[:50]))
        assert store.verify()["ok"]
        # reservoir over 2,000 positions: spread over the whole stream, not the latest
        assert 700 < info[:, POSITION].mean() < 1300
        assert torch.equal(mem.logits[:50], logits_of(mem.x[:50]))


def test_reservoir_keeps_every_example_alike():
    """Each of 20,000 examples stays with probability capacity / seen: over 200 memories of
    100 batches, each tenth of the stream holds about a tenth of them."""
    mem = ReplayMemory(200, SHAPE, CLASSES, "reservoir")
    feed = Feeder(mem, 7)
    x, y = feed.batch(20)
    for b in range(1000):
        feed.add(x, y, None, 0, b * 20, None)
    tenths = np.bincount(mem.info[:200, POSITION].numpy() // 2000, minlength=10)
    assert tenths.sum() == 200 and tenths.min() >= 8 and tenths.max() <= 35


def test_a_later_write_to_the_same_slot_wins():
    slots = torch.tensor([3, 7, 3, 50, 7, 50])
    assert last_write_wins(slots, 50).tolist() == [50, 50, 3, 50, 7, 50]


def test_class_balanced_writes(device):
    mem = ReplayMemory(40, SHAPE, CLASSES, "class-balanced", device)
    feed = Feeder(mem, 1)
    for c in range(4):  # classes arrive one after another, as in a split stream
        for b in range(5):
            x, _ = feed.batch()
            feed.add(x, torch.full((10,), c, device=device), None, c, (c * 5 + b) * 10, None)
    assert np.bincount(mem.y[: len(mem)].cpu().numpy()).tolist() == [10, 10, 10, 10]
    assert (mem.logits == 0).all()  # no logits asked for, none kept


def test_flush_with_rekey_keys_every_memory_in_one_transaction(tmp_path, device):
    mem = ReplayMemory(30, SHAPE, CLASSES, "reservoir", device)
    feed = Feeder(mem, 5)
    with make_store(tmp_path) as store:
        for b in range(3):
            feed.add(*feed.batch(), None, 0, b * 10, None)
        mem.flush_to_store(store, keys_of, loss_of)
        mem.replay(torch.arange(5, device=device))
        for b in range(3, 6):  # evicts some flushed memories, adds new ones
            feed.add(*feed.batch(), None, 0, b * 10, None)

        def drifted(x):  # a new encoder: every key moves
            return keys_of(x) * 2 + 1

        version = store.stats()["version"]
        mem.flush_to_store(store, drifted, loss_of, keys=drifted(mem.x[: len(mem)]))
        ids = mem.store_ids()
        assert sorted(ids.tolist()) == store.catalog.ids.tolist()
        assert np.allclose(store.keys_of(ids), drifted(mem.x[: len(mem)]))
        assert store.stats()["version"] == version + 2  # write and rekey, one commit
        assert not mem.pending() and store.verify()["ok"]
        # a failed flush leaves the memory pending, to be flushed again
        before = store.catalog.ids.tolist()
        feed.add(*feed.batch(), None, 0, 60, None)
        with pytest.raises(StoreError):
            mem.flush_to_store(
                store, lambda x: keys_of(x)[:, :3], loss_of
            )  # keys of the wrong size
        assert mem.pending() and store.catalog.ids.tolist() == before
        mem.flush_to_store(store, keys_of, loss_of)
        assert not mem.pending() and len(store) == 30 and store.verify()["ok"]


def test_replay_counts_and_losses_reach_the_store(tmp_path, device):
    mem = ReplayMemory(30, SHAPE, CLASSES, "reservoir", device)
    feed = Feeder(mem, 2)
    with make_store(tmp_path) as store:
        x, y = feed.batch(20)
        feed.add(x, y, 0, 0, 0, None)
        draws = [feed.sample(8, "class-balanced") for _ in range(5)]
        for slots in draws:
            assert len(set(slots.tolist())) == 8  # distinct memories
            mem.replay(slots)  # replayed before they were ever flushed
        mem.flush_to_store(store, keys_of, loss_of)
        ids = mem.store_ids()
        recs = {r["id"]: r for r in store.records(ids)}
        expect = np.bincount(torch.cat(draws).cpu().numpy(), minlength=20)
        for slot in range(20):
            rec = recs[int(ids[slot])]
            assert rec["replay_count"] == expect[slot]
            if expect[slot]:
                assert rec["last_loss"] == pytest.approx(slot / 100)


def test_balanced_draws_give_each_class_its_share(device):
    """90 memories of class 0 and 10 of class 1: a class-balanced draw takes both about
    equally, a uniform one mostly class 0."""
    mem = ReplayMemory(100, SHAPE, CLASSES, "reservoir", device)
    feed = Feeder(mem, 8)
    x, _ = feed.batch(100)
    y = torch.tensor([0] * 90 + [1] * 10, device=device)
    feed.add(x, y, None, 0, 0, None)
    balanced = torch.cat([mem.y[feed.sample(10, "class-balanced")] for _ in range(200)])
    uniform = torch.cat([mem.y[feed.sample(10, "uniform")] for _ in range(200)])
    assert 0.4 < balanced.float().mean() < 0.6
    assert 0.05 < uniform.float().mean() < 0.15


def test_state_round_trip_through_the_store(tmp_path, device):
    mem = ReplayMemory(25, SHAPE, CLASSES, "reservoir", device)
    feed = Feeder(mem, 3)
    with make_store(tmp_path) as store:
        for b in range(12):
            x, y = feed.batch()
            feed.add(x, y, 1, 0, b * 10, logits_of(x))
        with pytest.raises(RuntimeError, match="flush"):
            mem.state_dict()
        mem.flush_to_store(store, keys_of, loss_of)
        state = mem.state_dict()
        assert all(v.device.type == "cpu" for v in state.values())  # a state for any device
        back = ReplayMemory(25, SHAPE, CLASSES, "reservoir", device)
        back.load_state_dict(state, store)
        for field in ("x", "y", "info", "logits"):
            assert torch.equal(getattr(back, field)[:25], getattr(mem, field)[:25]), field
        assert back.seen == mem.seen and len(back) == len(mem)
        # the same uniforms make the same writes
        x, y = feed.batch()
        u = feed.uniforms(10)
        mem.add(x, y, 1, 0, 120, logits_of(x), u)
        back.add(x, y, 1, 0, 120, logits_of(x), u)
        assert torch.equal(back.x, mem.x)


def test_store_too_small_for_the_memory_is_an_error(tmp_path, device):
    mem = ReplayMemory(30, SHAPE, CLASSES, "reservoir", device)
    feed = Feeder(mem, 4)
    with make_store(tmp_path, capacity=20) as store:
        feed.add(*feed.batch(30), 0, 0, 0, None)
        with pytest.raises(StoreError, match="capacity"):
            mem.flush_to_store(store, keys_of, loss_of)


def test_refresh_logits_renews_only_that_experience(device):
    mem = ReplayMemory(40, SHAPE, CLASSES, "reservoir", device)
    feed = Feeder(mem, 5)
    for e in range(2):
        x, y = feed.batch(20)
        feed.add(x, y, None, e, e * 20, logits_of(x))
    before = mem.logits.clone()
    mem.refresh_logits(1, torch.full((len(mem), CLASSES), 7.0, device=device))
    new = mem.info[:, EXPERIENCE] == 1
    new[len(mem) :] = False
    assert (mem.logits[new] == 7).all() and new.sum() == 20
    assert torch.equal(mem.logits[~new], before[~new])


def test_balanced_draws_see_every_write(device):
    mem = ReplayMemory(100, SHAPE, CLASSES, "reservoir", device)
    feed = Feeder(mem, 6)
    x, _ = feed.batch(20)
    feed.add(x, torch.zeros(20, dtype=torch.int64, device=device), None, 0, 0, None)
    assert set(mem.y[feed.sample(10, "class-balanced")].tolist()) == {0}
    feed.add(x, torch.ones(20, dtype=torch.int64, device=device), None, 1, 20, None)
    labels = mem.y[feed.sample(20, "class-balanced")]
    assert (labels == 1).sum() >= 5 and (labels == 0).sum() >= 5  # the new class is drawn
