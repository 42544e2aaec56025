"""Streams <-> Avalanche 0.6: tensors survive the round trip, and Avalanche trains on ours."""

from __future__ import annotations

import torch

import streams


def test_round_trip_keeps_every_tensor(digits_split):
    back = streams.from_avalanche(streams.to_avalanche(digits_split))
    assert len(back) == len(digits_split)
    for a, b in zip(digits_split, back, strict=True):
        assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
        assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_test, b.y_test)
        assert a.classes == b.classes and a.task_id == b.task_id


def test_task_ids_survive_round_trip():
    s = streams.get_stream("split-task-digits", experiences=3)
    back = streams.from_avalanche(streams.to_avalanche(s))
    assert back.scenario == "task"
    assert [e.task_id for e in back] == [0, 1, 2]


def test_from_avalanche_nc_benchmark():
    from avalanche.benchmarks import nc_benchmark
    from torch.utils.data import TensorDataset

    data = streams.load_source("digits")
    train = TensorDataset(data.x_train, data.y_train)
    test = TensorDataset(data.x_test, data.y_test)
    train.targets, test.targets = data.y_train.tolist(), data.y_test.tolist()
    bm = nc_benchmark(train, test, n_experiences=5, task_labels=False, seed=1)
    s = streams.from_avalanche(bm)
    assert len(s) == 5 and s.scenario == "class"
    assert sum(e.n_train for e in s) == len(data.y_train)
    for e, exp in zip(s, bm.train_stream, strict=True):
        assert set(e.y_train.tolist()) == set(exp.classes_in_this_experience)


def test_avalanche_naive_trains_on_adapted_stream(digits_split):
    from avalanche.training import Naive

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    bm = streams.to_avalanche(digits_split)
    strategy = Naive(
        model,
        torch.optim.SGD(model.parameters(), lr=0.5),
        torch.nn.CrossEntropyLoss(),
        train_mb_size=32,
        train_epochs=3,
        device="cpu",
        evaluator=None,
    )
    before = [p.detach().clone() for p in model.parameters()]
    strategy.train(bm.train_stream[0])
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    exp = digits_split[0]
    with torch.no_grad():
        acc = (model(exp.x_test).argmax(1) == exp.y_test).float().mean().item()
    assert acc > 0.9  # two classes, learned
