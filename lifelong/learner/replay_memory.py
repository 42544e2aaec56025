"""``ReplayMemory``: the agent's working copy of its episodic memory, on the learner's device.

Every update draws a replay batch and every incoming example meets the write policy; doing
either through SQLite costs more than the learning step itself. So the agent keeps its
memories in tensors on its own device, decides draws and writes there, and hands the store
the net change at flush points: every checkpoint, re-key and experience end. The store stays
the durable truth that checkpoints snapshot and other processes query; between flushes it
lags by at most one checkpoint interval, which a resumed run never sees, since it resumes
from the checkpoint and its snapshot of the store.

Draws and writes are tensor programs with no host reads: the randomness comes in as
uniforms the agent draws once a step (``u``), the write policy's choices become slot
indices, and what a write does not keep goes to one spare row past the capacity instead of
through a branch on the host. That is what lets a step run on a GPU, or be captured as one
CUDA graph, without waiting for the device.

Each memory also keeps the logits the network gave it when it was written (DER,
Buzzega et al. 2020): replaying them as targets is cheap and holds old decision boundaries.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
import torch

from stores import EpisodicStore, StoreError

TASK, EXPERIENCE, POSITION, STORE_ID = range(4)  # the columns of ``info``


class ReplayMemory:
    def __init__(
        self,
        capacity: int,
        input_shape: tuple[int, ...],
        n_classes: int,
        write_policy: str,
        device: torch.device | str = "cpu",
    ) -> None:
        self.capacity, self.write_policy, self.n_classes = capacity, write_policy, n_classes
        self.device = torch.device(device)
        rows = capacity + 1  # the last row takes what a write does not keep
        self.x = torch.zeros(rows, *input_shape, device=self.device)
        self.y = torch.zeros(rows, dtype=torch.int64, device=self.device)
        self.logits = torch.zeros(rows, n_classes, device=self.device)
        # task (-1: none), experience, position, store id (-1: written since the last flush)
        self.info = torch.tensor([-1, 0, 0, -1], device=self.device).repeat(rows, 1)
        self.replays = torch.zeros(rows, dtype=torch.int64, device=self.device)
        self.flushed = np.empty(0, np.int64)  # the store ids the store held at the last flush
        self.size = 0  # rows in use: they fill to capacity, then stay full
        self.seen = 0
        self.max_task = -1  # the largest task id written (task-balanced draws count up to it)

    def __len__(self) -> int:
        return self.size

    @property
    def task(self) -> torch.Tensor:
        """Each slot's task id (-1: none); a view of ``info``."""
        return self.info[:, TASK]

    # -- writing --------------------------------------------------------------------------
    def uniforms_per_write(self, n: int) -> int:
        """How many of the step's uniforms a write of n examples takes."""
        return n if self.write_policy == "reservoir" else 2 * n

    def add(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        task_id: int | None,
        experience: int,
        position: int,
        logits: torch.Tensor | None,
        u: torch.Tensor,
    ) -> None:
        """Offer an incoming batch to the write policy (``u``: ``uniforms_per_write`` uniforms
        in [0, 1), float64). ``logits``: the batch's logits, which kept examples remember
        (None: zeros)."""
        n = len(y)
        if self.write_policy == "reservoir":
            slots = self._reservoir_slots(n, u)
        else:
            slots = self._class_balanced_slots(y, u)
        slots = _last_write_wins(slots, self.capacity)
        self.x.index_copy_(0, slots, x)
        self.y.index_copy_(0, slots, y)
        if logits is None:
            self.logits.index_fill_(0, slots, 0.0)
        else:
            self.logits.index_copy_(0, slots, logits)
        task = -1 if task_id is None else task_id
        self.info.index_copy_(0, slots, self._info_rows(n, task, experience, position))
        self.replays.index_fill_(0, slots, 0)
        self.seen += n
        self.size = min(self.size + n, self.capacity)
        self.max_task = max(self.max_task, task)

    def _info_rows(self, n: int, task: int, experience: int, position: int) -> torch.Tensor:
        """(n, 4) the incoming rows' ``info``. On the CPU one small tensor from the host; on a
        GPU made there by fills, since a copy from the host would wait for the device."""
        if self.device.type == "cpu":
            return torch.tensor([task, experience, position, -1]) + _position_ramp(n, self.device)
        rows = torch.empty(n, 4, dtype=torch.int64, device=self.device)
        rows[:, TASK], rows[:, EXPERIENCE], rows[:, STORE_ID] = task, experience, -1
        torch.add(_arange(n, self.device), position, out=rows[:, POSITION])
        return rows

    def _reservoir_slots(self, n: int, u: torch.Tensor) -> torch.Tensor:
        """Reservoir sampling (Vitter's algorithm R): an example goes to the next free slot
        while there is room, else, at stream index t, to a slot drawn uniformly from 0..t,
        kept only if that is below the capacity. Every example seen so far is in memory
        with equal probability capacity/seen."""
        k = _arange(n, self.device)
        free = k + self.size
        drawn = (u[:n] * (k + self.seen + 1)).long()
        return torch.where(free < self.capacity, free, drawn).clamp_(max=self.capacity)

    def _class_balanced_slots(self, y: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Keep classes equally represented: once full, an example of a class that is not
        the largest evicts a random member of a largest class (drawn uniformly among them);
        otherwise it is dropped (as GDumb). One example at a time, each seeing the labels
        the ones before it wrote; this policy is not the default, and pays for that."""
        slots = []
        size = self.size
        counts = torch.zeros(self.n_classes, device=self.device, dtype=torch.float64)
        counts.index_add_(0, self.y[:size], _ones(size, self.device))
        for k in range(len(y)):
            label = y[k : k + 1]
            if size < self.capacity:
                slot = torch.full((1,), size, device=self.device)
                size += 1
                counts.index_add_(0, label, _ones(1, self.device))
            else:
                largest = counts.max()
                accept = counts[label] < largest
                victim_class = _pick(counts == largest, u[2 * k])
                slot = _pick(self.y[:size] == victim_class, u[2 * k + 1]).view(1)
                slot = torch.where(accept, slot, self.capacity)
                counts.index_add_(0, victim_class.view(1), -accept.double())
                counts.index_add_(0, label, accept.double())
            self.y.index_copy_(0, slot, label)  # the next example sees it
            slots.append(slot)
        return torch.cat(slots)

    def refresh_logits(self, experience: int, logits: torch.Tensor) -> None:
        """Give the memories written during ``experience`` the logits of the network as it is
        now, at its end (``logits``: of every memory, in slot order): it knows that
        experience best now, so those are the targets worth holding on to (the update of
        X-DER, Boschini et al. 2022, for the current task)."""
        n = self.size
        theirs = (self.info[:n, EXPERIENCE] == experience).unsqueeze(1)
        torch.where(theirs, logits[:n], self.logits[:n], out=self.logits[:n])

    # -- replay ---------------------------------------------------------------------------
    def group_sizes(self, policy: str) -> torch.Tensor | None:
        """Each memory's handicap in a balanced draw: the size of its group (its class, or
        its task), so every group is equally likely at each draw; None for a uniform one.
        The memory does not change between a step's draws: one call serves them all."""
        size = self.size
        if policy == "uniform" or not size:
            return None
        if policy == "class-balanced":
            group, bins = self.y[:size], self.n_classes
        else:
            group, bins = self.info[:size, TASK] + 1, self.max_task + 2
        sizes = torch.zeros(bins, dtype=torch.float64, device=self.device)
        sizes.index_add_(0, group, _ones(size, self.device))
        return sizes[group]

    def sample(
        self, n: int, exponentials: torch.Tensor, sizes: torch.Tensor | None = None
    ) -> torch.Tensor:
        """min(n, size) distinct slots, from ``len(self)`` standard exponential draws: an
        exponential race (each memory arrives at its draw times its ``group_sizes``
        handicap; the first n arrive), which is drawing without replacement with weights one
        over the group's size; uniform without ``sizes``."""
        times = exponentials[: self.size]
        if sizes is not None:
            times = times * sizes
        return times.topk(min(n, self.size), largest=False).indices

    def replay(self, slots: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The batch of these slots, counted as replayed (the store hears at the flush)."""
        self.replays.index_add_(0, slots, _ones(len(slots), self.device, torch.int64))
        return self.batch(slots)

    def batch(self, slots: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(x, y, task, logits) of these slots."""
        return (
            self.x.index_select(0, slots),
            self.y.index_select(0, slots),
            self.task.index_select(0, slots),
            self.logits.index_select(0, slots),
        )

    def store_ids(self) -> np.ndarray:
        """Each slot's store id, -1 for memories written since the last flush (reads the
        device)."""
        return self.info[: self.size, STORE_ID].cpu().numpy()

    def slots_of(self, store_ids: np.ndarray) -> np.ndarray:
        """The slots holding these store ids (all flushed, e.g. found by a store search)."""
        held = self.store_ids()
        order = np.argsort(held)
        return order[np.searchsorted(held, store_ids, sorter=order)]

    # -- the store ------------------------------------------------------------------------
    def pending(self) -> bool:
        """Whether the store lags behind this memory (reads the device)."""
        ids = self.store_ids()
        return bool(
            (ids < 0).any() or len(np.setdiff1d(self.flushed, ids)) or bool(self.replays.any())
        )

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
        already there (the encoder drifted). What it reads of the device, it reads once."""
        n = self.size
        ids = self.store_ids()  # what they will be once this commits
        replays = self.replays[:n].cpu().numpy()
        new = np.flatnonzero(ids < 0)
        evicted = np.setdiff1d(self.flushed, ids[ids >= 0])
        counted = np.flatnonzero(replays)
        changed = len(new) or len(evicted) or store.meta["seen"] != self.seen
        if keys is None and not (changed or len(counted)):
            return
        with store.transaction():
            if changed:
                rows = torch.from_numpy(new).to(self.device)
                x, info = self.x[rows], self.info[rows].cpu().numpy()
                result = store.write(
                    keys[new] if keys is not None else keys_of(x),
                    x.cpu().numpy(),
                    self.y[rows].cpu().numpy(),
                    tasks=info[:, TASK],
                    experiences=info[:, EXPERIENCE],
                    positions=info[:, POSITION],
                    evict=evicted,
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
                store.record_replay(ids[counted], loss_of(counted), replays[counted])
        # only now that it is committed: the memory's view of what the store holds
        self.info[:n, STORE_ID] = torch.from_numpy(ids).to(self.device)
        self.replays.zero_()
        self.flushed = np.sort(ids)

    def load(self, store: EpisodicStore, store_ids: np.ndarray) -> None:
        """Fill the slots, in order, from these memories of the store (all flushed)."""
        if len(store_ids) > self.capacity:
            raise StoreError(
                f"the store holds {len(store_ids)} memories, more than the agent's memory "
                f"capacity {self.capacity}"
            )
        n = len(store_ids)
        got = store.fetch(store_ids)
        info = np.stack([got.tasks, got.experiences, got.positions, store_ids], axis=1)
        self.x[:n] = torch.from_numpy(np.ascontiguousarray(got.values)).to(self.device)
        self.y[:n] = torch.from_numpy(got.labels).to(self.device)
        self.info[:n] = torch.from_numpy(info.astype(np.int64)).to(self.device)
        self.info[n:, STORE_ID] = -1
        self.replays.zero_()
        self.flushed = np.sort(np.asarray(store_ids, np.int64))
        self.size = n
        self.max_task = max(self.max_task, int(got.tasks.max(initial=-1)))

    # -- checkpoint state (flush first: it records store ids, not examples) --------------
    def state_dict(self) -> dict:
        if self.pending():
            raise RuntimeError("flush the replay memory to the store before saving its state")
        return {
            "store_ids": torch.from_numpy(self.store_ids().copy()),
            "logits": self.logits[: self.size].cpu(),
            "seen": torch.tensor(self.seen),
        }

    def load_state_dict(self, state: dict, store: EpisodicStore) -> None:
        self.load(store, state["store_ids"].numpy())
        self.logits[: self.size] = state["logits"].to(self.device)
        self.seen = int(state["seen"])


def _last_write_wins(slots: torch.Tensor, spare: int) -> torch.Tensor:
    """A batch's slots with each slot written once: where a later example of the batch took
    the slot of an earlier one, the earlier goes to the spare row (on a GPU, two writes to
    one row would land in no set order)."""
    n = len(slots)
    overwritten = ((slots.unsqueeze(0) == slots.unsqueeze(1)) & _later(n, slots.device)).any(1)
    return slots.masked_fill(overwritten, spare)


def _pick(candidates: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The index of one of the True entries of ``candidates``, uniformly (``u`` in [0, 1))."""
    rank = (u * candidates.sum()).long()
    return torch.searchsorted(candidates.cumsum(0), rank, right=True)


@cache
def _arange(n: int, device: torch.device) -> torch.Tensor:
    return torch.arange(n, device=device)


@cache
def _later(n: int, device: torch.device) -> torch.Tensor:
    """(n, n): entry [i, k] is whether k comes after i."""
    return torch.ones(n, n, dtype=torch.bool, device=device).triu(1)


@cache
def _position_ramp(n: int, device: torch.device) -> torch.Tensor:
    """(n, 4) adding 0..n-1 to the position column of an ``info`` row."""
    ramp = torch.zeros(n, 4, dtype=torch.int64)
    ramp[:, POSITION] = torch.arange(n)
    return ramp.to(device)


@cache
def _ones(n: int, device: torch.device, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.ones(n, dtype=dtype, device=device)
