"""Adapters between our streams and Avalanche 0.6 benchmarks, tensor for tensor.

Avalanche is imported lazily: it takes seconds to import and most users never need it here.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from streams.core import Experience, Stream
from streams.errors import StreamError


def to_avalanche(stream: Stream):
    """An Avalanche benchmark with one train and one test experience per stream experience."""
    from avalanche.benchmarks import tensors_benchmark

    exps = list(stream)
    return tensors_benchmark(
        train_tensors=[(e.x_train, e.y_train) for e in exps],
        test_tensors=[(e.x_test, e.y_test) for e in exps],
        task_labels=[e.task_id if e.task_id is not None else 0 for e in exps],
    )


def _dataset_tensors(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (x, y) of an Avalanche dataset, in order, with its eval transforms."""
    ds = dataset.eval() if hasattr(dataset, "eval") else dataset
    xs, ys = [], []
    for batch in DataLoader(ds, batch_size=1024, shuffle=False):
        xs.append(torch.as_tensor(batch[0]))
        ys.append(torch.as_tensor(batch[1]))
    if not xs:
        return torch.empty(0), torch.empty(0, dtype=torch.int64)
    return torch.cat(xs).to(torch.float32), torch.cat(ys).to(torch.int64)


def from_avalanche(benchmark, name: str = "avalanche", scenario: str | None = None) -> Stream:
    """A stream from an Avalanche benchmark (nc_benchmark, class_incremental_benchmark, ...).

    The i-th test experience is paired with the i-th train experience, as Avalanche's
    generators build them; a benchmark with a different count is refused.
    """
    train_s, test_s = list(benchmark.train_stream), list(benchmark.test_stream)
    if len(train_s) != len(test_s):
        raise StreamError(
            f"benchmark has {len(train_s)} train but {len(test_s)} test experiences; "
            "a stream needs one test set per experience"
        )
    exps: list[Experience] = []
    for i, (tr, te) in enumerate(zip(train_s, test_s, strict=True)):
        xtr, ytr = _dataset_tensors(tr.dataset)
        xte, yte = _dataset_tensors(te.dataset)
        task = getattr(tr, "task_label", 0)
        classes = tuple(
            sorted(int(c) for c in getattr(tr, "classes_in_this_experience", ytr.unique().tolist()))
        )
        exps.append(Experience(i, xtr, ytr, xte, yte, int(task), classes))
    tasks = {e.task_id for e in exps}
    if scenario is None:
        scenario = "task" if len(tasks) > 1 else "class"
    n_classes = 1 + max(int(e.y_train.max()) for e in exps)
    return Stream(
        name, scenario, len(exps), n_classes, tuple(exps[0].x_train.shape[1:]), exps.__getitem__
    )
