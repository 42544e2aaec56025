"""``ReplayMemory``: the agent's working copy of its episodic memory, in RAM.

Every update draws a replay batch and every incoming example meets the write policy; doing
either through SQLite costs more than the learning step itself. So the agent keeps its
memories in RAM tensors, decides writes there (with the store's own reservoir and
class-balanced plans) and hands the store the net change at flush points: every
checkpoint, re-key and experience end. The store stays the durable truth that checkpoints
snapshot and other processes query; between flushes it lags by at most one checkpoint
interval, which a resumed run never sees, since it resumes from the checkpoint and its
snapshot of the store.

Each memory also keeps the logits the network gave it when it was written (DER,
Buzzega et al. 2020): replaying them as targets is cheap and holds old decision boundaries.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import torch

from stores import EpisodicStore, StoreError
from stores.eviction import plan_class_balanced, reservoir_choices
from stores.sampling import balanced_rows_of


class ReplayMemory:
    def __init__(
        self,
        capacity: int,
        input_shape: tuple[int, ...],
        n_classes: int,
        write_policy: str,
        seed: int,
    ) -> None:
        self.capacity, self.write_policy = capacity, write_policy
        self.x = torch.zeros(capacity, *input_shape)
        self.y = torch.zeros(capacity, dtype=torch.int64)
        self.task = torch.full((capacity,), -1, dtype=torch.int64)  # -1: no task id
        self.logits = torch.zeros(capacity, n_classes)
        self.experience = np.zeros(capacity, np.int64)
        self.position = np.zeros(capacity, np.int64)
        # numpy views of the same buffers: indexing them costs a tenth of indexing tensors
        self._np = {k: getattr(self, k).numpy() for k in ("x", "y", "task", "logits")}
        self.store_id = np.full(capacity, -1, np.int64)  # -1: written since the last flush
        self.replays = np.zeros(capacity, np.int64)  # replays since the last flush
        self.evicted: list[int] = []  # store ids to delete at the next flush
        self.size = 0
        self.seen = 0
        self.rng = np.random.default_rng([seed, 20_202])

    def __len__(self) -> int:
        return self.size

    # -- writing --------------------------------------------------------------------------
    def add(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        task_id: int | None,
        experience: int,
        position: int,
        logits: torch.Tensor | None,
    ) -> int:
        """Offer an incoming batch to the write policy; returns how many were kept.
        ``logits``: the batch's logits, which kept examples remember (None: not kept)."""
        if self.write_policy == "reservoir":  # slots are the positions it speaks of
            keep, evict = reservoir_choices(self.size, len(y), self.seen, self.capacity, self.rng)
        else:
            labels = self.y[: self.size].numpy()
            held = np.arange(self.size)
            plan = plan_class_balanced(held, labels, y.numpy(), self.seen, self.capacity, self.rng)
            keep, evict = plan.keep_new, plan.evict
        self.seen += len(y)
        if len(keep) == 0:
            return 0
        fresh = np.arange(self.size, self.size + len(keep) - len(evict))
        slots = np.concatenate([evict, fresh])
        gone = self.store_id[evict]
        self.evicted += gone[gone >= 0].tolist()
        mem = self._np
        mem["x"][slots] = x.detach().numpy()[keep]
        mem["y"][slots] = y.numpy()[keep]
        mem["task"][slots] = -1 if task_id is None else task_id
        mem["logits"][slots] = 0.0 if logits is None else logits.detach().numpy()[keep]
        self.experience[slots] = experience
        self.position[slots] = position + keep
        self.store_id[slots] = -1
        self.replays[slots] = 0
        self.size += len(fresh)
        return len(keep)

    def refresh_logits(self, experience: int, logits: torch.Tensor) -> None:
        """Give the memories written during ``experience`` the logits of the network as it is
        now, at its end (``logits``: of every memory, in slot order): it knows that
        experience best now, so those are the targets worth holding on to (the update of
        X-DER, Boschini et al. 2022, for the current task)."""
        slots = torch.from_numpy(np.flatnonzero(self.experience[: self.size] == experience))
        if len(slots):
            self.logits[slots] = logits[slots]

    # -- replay ---------------------------------------------------------------------------
    def sample(self, n: int, policy: str, rng: np.random.Generator) -> np.ndarray:
        """Up to n distinct slots: uniform, or balanced over classes or tasks."""
        if policy == "uniform":
            slots = rng.choice(self.size, min(n, self.size), replace=False)
        else:
            column = self._np["y" if policy == "class-balanced" else "task"][: self.size]
            slots = balanced_rows_of(column, n, rng)
        return slots

    def replay(self, slots: np.ndarray) -> tuple[torch.Tensor, ...]:
        """The batch of these slots, counted as replayed (the store hears at the flush)."""
        self.replays[slots] += 1
        return self.batch(slots)

    def batch(self, slots: np.ndarray) -> tuple[torch.Tensor, ...]:
        """(x, y, task, logits) of these slots."""
        mem = self._np
        return tuple(torch.from_numpy(mem[k][slots]) for k in ("x", "y", "task", "logits"))

    def slots_of(self, store_ids: np.ndarray) -> np.ndarray:
        """The slots holding these store ids (all flushed, e.g. found by a store search)."""
        order = np.argsort(self.store_id[: self.size])
        return order[np.searchsorted(self.store_id[: self.size], store_ids, sorter=order)]

    # -- the store ------------------------------------------------------------------------
    def pending(self) -> bool:
        return bool(self.evicted or (self.store_id[: self.size] < 0).any() or self.replays.any())

    def flush_to_store(
        self,
        store: EpisodicStore,
        keys_of: Callable[[torch.Tensor], np.ndarray],
        loss_of: Callable[[np.ndarray], np.ndarray],
        *,
        keys: np.ndarray | None = None,
    ) -> None:
        """Hand the store every change since the last flush, in one transaction: new memories
        (keyed by ``keys_of`` now) and evictions, replay counts with each replayed memory's
        loss, and with ``keys`` (of every memory, in slot order) re-keys of the memories
        already there (the encoder drifted)."""
        n = self.size
        if keys is None and not (self.pending() or store.meta["seen"] != self.seen):
            return
        new = np.flatnonzero(self.store_id[:n] < 0)
        counted = np.flatnonzero(self.replays[:n])
        ids = self.store_id[:n].copy()  # what they will be once this commits
        with store.transaction():
            if len(new) or self.evicted or store.meta["seen"] != self.seen:
                x = self._np["x"][new]
                result = store.write(
                    keys[new] if keys is not None else keys_of(torch.from_numpy(x)),
                    x,
                    self._np["y"][new],
                    tasks=self._np["task"][new],
                    experiences=self.experience[new],
                    positions=self.position[new],
                    evict=np.asarray(self.evicted, np.int64),
                    stream_seen=self.seen,
                )
                if len(result.ids) != len(new):
                    raise StoreError(
                        f"the store kept {len(result.ids)} of {len(new)} memories: its "
                        f"capacity ({store.capacity}) is below the agent's memory ({self.capacity})"
                    )
                ids[new] = result.ids
            held = np.setdiff1d(np.arange(n), new, assume_unique=True)
            if keys is not None and len(held):
                store.rekey(ids[held], keys[held])
            if len(counted):
                store.record_replay(ids[counted], loss_of(counted), self.replays[counted])
        # only now that it is committed: the memory's view of what the store holds
        self.store_id[:n] = ids
        self.evicted = []
        self.replays[:] = 0

    def load(self, store: EpisodicStore, store_ids: np.ndarray) -> None:
        """Fill the slots, in order, from these memories of the store (all flushed)."""
        if len(store_ids) > self.capacity:
            raise StoreError(
                f"the store holds {len(store_ids)} memories, more than the agent's memory "
                f"capacity {self.capacity}"
            )
        n = len(store_ids)
        got = store.fetch(store_ids)
        self.x[:n] = torch.from_numpy(got.values)
        self.y[:n] = torch.from_numpy(got.labels)
        self.task[:n] = torch.from_numpy(got.tasks)
        self.experience[:n], self.position[:n] = got.experiences, got.positions
        self.store_id[:] = -1
        self.store_id[:n] = store_ids
        self.replays[:] = 0
        self.evicted = []
        self.size = n

    # -- checkpoint state (flush first: it records store ids, not examples) --------------
    def state_dict(self) -> dict:
        if self.pending():
            raise RuntimeError("flush the replay memory to the store before saving its state")
        return {
            "store_ids": torch.from_numpy(self.store_id[: self.size].copy()),
            "logits": self.logits[: self.size].clone(),
            "seen": torch.tensor(self.seen),
            "rng": json.dumps(self.rng.bit_generator.state),
        }

    def load_state_dict(self, state: dict, store: EpisodicStore) -> None:
        self.load(store, state["store_ids"].numpy())
        self.logits[: self.size] = state["logits"]
        self.seen = int(state["seen"])
        self.rng.bit_generator.state = json.loads(state["rng"])
