"""Which memories stay when the store is full: one small function per policy.

Each plans a whole incoming batch at once (an item may evict one written earlier in the same
batch) and returns what to insert and what to delete, so the store can apply the plan in one
transaction. Randomness comes only from the generator passed in, whose state the store keeps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

POLICIES = ("reservoir", "class-balanced")


@dataclass
class Plan:
    keep_new: np.ndarray  # indices into the incoming batch to insert
    evict: np.ndarray  # existing memory ids to delete
    seen: int  # stream count after the batch


def plan_reservoir(
    ids: np.ndarray, n_new: int, seen: int, capacity: int, rng: np.random.Generator
) -> Plan:
    """Reservoir sampling over the stream (Vitter's algorithm R): ``reservoir_choices`` with
    the positions it evicts turned into the ids held there."""
    keep_new, evict_at = reservoir_choices(len(ids), n_new, seen, capacity, rng)
    return Plan(keep_new, np.sort(ids[evict_at]).astype(np.int64), seen + n_new)


def reservoir_choices(
    held: int, n_new: int, seen: int, capacity: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(incoming items to keep, positions among the ``held`` they evict), both sorted.

    Every example seen so far is in memory with equal probability capacity/seen. Position j
    is held item j, or incoming item k placed in free room at ``held + k``; a later item of
    the batch can replace an earlier one. One vectorised draw serves the whole batch.
    """
    room = max(0, min(n_new, capacity - held))
    # item k draws uniformly from 0..seen+k (a float draw: an integer draw with a bound per
    # item costs ten times as much, and the bias is below 2^-40)
    late = np.arange(room, n_new)  # items that arrive when memory is full
    draws = (rng.random(len(late)) * (seen + late + 1)).astype(np.int64).tolist()
    winners: dict[int, int] = {}  # position -> incoming item; the last draw of a slot wins
    for k, j in zip(range(room, n_new), draws):
        if j < capacity:
            winners[j] = k
    if not winners:  # the common case late in a stream: nothing new is kept
        return np.arange(room, dtype=np.int64), np.empty(0, np.int64)
    placed = [k for k in range(room) if held + k not in winners]
    keep_new = np.sort(np.asarray(placed + list(winners.values()), np.int64))
    evict_at = np.sort(np.asarray([j for j in winners if j < held], np.int64))
    return keep_new, evict_at


def plan_class_balanced(
    ids: np.ndarray,
    labels: np.ndarray,
    new_labels: np.ndarray,
    seen: int,
    capacity: int,
    rng: np.random.Generator,
) -> Plan:
    """Keep classes equally represented: when full, a new example of a class that is not the
    largest evicts a random member of the largest class; otherwise it is dropped (as GDumb)."""
    members: dict[int, list[int]] = {}
    for i, lab in zip(ids.tolist(), labels.tolist(), strict=True):
        members.setdefault(lab, []).append(i)
    size = len(ids)
    for k, lab in enumerate(new_labels.tolist()):
        seen += 1
        if size < capacity:
            members.setdefault(lab, []).append(-(k + 1))
            size += 1
            continue
        largest = max(len(v) for v in members.values())
        if len(members.get(lab, [])) >= largest:
            continue
        biggest = sorted(c for c, v in members.items() if len(v) == largest)
        victim_class = biggest[int(rng.integers(0, len(biggest)))]
        pool = members[victim_class]
        pool.pop(int(rng.integers(0, len(pool))))
        members.setdefault(lab, []).append(-(k + 1))
    return _finish(ids, [i for v in members.values() for i in v], seen)


def _finish(ids: np.ndarray, slots: list[int], seen: int) -> Plan:
    final = np.asarray(slots, np.int64)
    keep_new = np.sort(-final[final < 0] - 1)
    evict = np.setdiff1d(ids, final[final >= 0])
    return Plan(keep_new.astype(np.int64), evict.astype(np.int64), seen)
