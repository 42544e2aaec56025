"""``from_arrays``: a stream from the user's own per-experience arrays, validated up front."""

from __future__ import annotations

from collections.abc import Sequence

from streams.core import Experience, Stream
from streams.errors import StreamError
from streams.validate import as_features, as_labels, check_pair


def from_arrays(
    train: Sequence[tuple],
    test: Sequence[tuple],
    *,
    task_ids: Sequence[int | None] | None = None,
    n_classes: int | None = None,
    scenario: str = "class",
    name: str = "arrays",
) -> Stream:
    """Build a stream from ``train[i] = (x, y)`` and ``test[i] = (x, y)`` for each experience i.

    x may be numpy or torch, any numeric dtype (converted to float32); y must be integer labels
    in ``[0, n_classes)`` (inferred as max label + 1 when not given). Every experience needs
    test data, since the accuracy matrix evaluates all of them.
    """
    if len(train) != len(test):
        raise StreamError(f"{len(train)} train experiences but {len(test)} test experiences")
    if not train:
        raise StreamError("a stream needs at least one experience")
    task_ids = (
        list(task_ids)
        if task_ids is not None
        else [
            None if scenario == "task-free" else (i if scenario == "task" else 0)
            for i in range(len(train))
        ]
    )
    if len(task_ids) != len(train):
        raise StreamError(f"{len(task_ids)} task ids for {len(train)} experiences")

    exps: list[Experience] = []
    labels = []
    for i, ((_, ytr), (_, yte)) in enumerate(zip(train, test, strict=True)):
        labels.append(
            (
                as_labels(ytr, f"experience {i} train y", n_classes),
                as_labels(yte, f"experience {i} test y", n_classes),
            )
        )
    if n_classes is None:
        n_classes = 1 + max(int(t.max()) for pair in labels for t in pair if t.numel())
    shape = None
    for i, ((xtr, _), (xte, _)) in enumerate(zip(train, test, strict=True)):
        ytr, yte = labels[i]
        xtr = as_features(xtr, f"experience {i} train x")
        xte = as_features(xte, f"experience {i} test x")
        check_pair(xtr, ytr, f"experience {i} train")
        check_pair(xte, yte, f"experience {i} test")
        if yte.numel() == 0:
            raise StreamError(f"experience {i} has no test data")
        if ytr.numel() == 0:
            raise StreamError(f"experience {i} has no training data")
        for x, part in ((xtr, "train"), (xte, "test")):
            if shape is None:
                shape = tuple(x.shape[1:])
            elif tuple(x.shape[1:]) != shape:
                raise StreamError(
                    f"experience {i} {part} x has example shape {tuple(x.shape[1:])}, "
                    f"expected {shape} like the first experience"
                )
        classes = tuple(sorted(int(c) for c in ytr.unique()))
        exps.append(Experience(i, xtr, ytr, xte, yte, task_ids[i], classes))

    return Stream(name, scenario, len(exps), n_classes, shape, exps.__getitem__)
