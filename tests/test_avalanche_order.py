"""The order an Avalanche strategy learns in: ``--no-shuffle`` is one protocol for every
method; Replay as ``compare`` builds it (``lifelong/compare/replay_order.py``) takes the
stream's rows in that order and its memories at random, and where it shuffles it is
Avalanche's own Replay, run for run; Cumulative and GDumb shuffle what they train on in any
protocol. Real strategies on scikit-learn's digits."""

from __future__ import annotations

import pytest
import torch

import streams
from lifelong.compare import run_baseline
from lifelong.config import RunConfig


def recorded_minibatches(
    monkeypatch, name: str, shuffle: bool, experiences: int = 3
) -> list[torch.Tensor]:
    """Strategy ``name`` through split-digits, each minibatch's labels kept."""
    from lifelong.compare import online

    seen: list[torch.Tensor] = []
    plugin_for = online.online_plugin

    def recording(*args, **kwargs):
        plugin = plugin_for(*args, **kwargs)
        answer = plugin.before_training_iteration

        def before_training_iteration(strategy, **more):
            seen.append(strategy.mb_y.cpu())
            return answer(strategy, **more)

        plugin.before_training_iteration = before_training_iteration
        return plugin

    monkeypatch.setattr(online, "online_plugin", recording)
    cfg = RunConfig(experiences=experiences, progress=False, shuffle=shuffle)
    run_baseline(name, "split-digits", 0, 50, cfg)
    return seen


@pytest.mark.parametrize("shuffle", [False, True])
def test_a_strategy_takes_the_stream_in_its_order_when_ours_does(monkeypatch, shuffle):
    """``--no-shuffle``: our agent learns each experience as given, and so does an Avalanche
    strategy (its loader shuffled regardless before); with shuffling on, its loader shuffles."""
    seen = recorded_minibatches(monkeypatch, "naive", shuffle, experiences=2)
    given = torch.cat([e.y_train for e in streams.get_stream("split-digits", experiences=2)])
    assert torch.equal(torch.cat(seen), given) == (not shuffle)


def test_in_the_streams_order_the_memories_still_come_at_random(monkeypatch):
    """``--no-shuffle``: the third experience's rows in the order given, ten a minibatch;
    the ten replayed after them drawn across the buffer's two experiences (in storage
    order, its first minibatches would replay the first experience's 25 alone)."""
    seen = recorded_minibatches(monkeypatch, "replay", shuffle=False)
    one, two, three = streams.get_stream("split-digits", experiences=3)
    start = -(-one.n_train // 10) + -(-two.n_train // 10)
    replaying = seen[start:]
    assert torch.equal(torch.cat([mb[:10] for mb in replaying])[: three.n_train], three.y_train)
    memories = set(torch.cat([mb[10:] for mb in replaying[:2]]).tolist())
    assert memories & set(one.classes) and memories & set(two.classes)


def test_shuffled_it_is_avalanches_replay_run_for_run(monkeypatch):
    """With shuffling on (the default) the same matrix as Avalanche's own ``Replay`` class."""
    import avalanche.training as T

    from lifelong.compare import strategies

    cfg = RunConfig(experiences=3, progress=False)
    ours = run_baseline("replay", "split-digits", 0, 50, cfg, online=False)
    made = strategies.make_strategy

    def avalanches(name, model, n_exp, memory, batch, cfg, options, device):
        if name != "replay":
            return made(name, model, n_exp, memory, batch, cfg, options, device)
        strategy = made("naive", model, n_exp, memory, batch, cfg, options, device)
        return T.Replay(
            model=model,
            optimizer=strategy.optimizer,
            criterion=torch.nn.CrossEntropyLoss(),
            train_mb_size=batch,
            train_epochs=1,
            eval_mb_size=1000,
            device=device,
            evaluator=strategy.evaluator,
            mem_size=memory,
        )

    from lifelong.compare import runs

    monkeypatch.setattr(runs, "make_strategy", avalanches)
    theirs = run_baseline("replay", "split-digits", 0, 50, cfg, online=False)
    assert theirs["matrix"] == ours["matrix"]


def test_what_cumulative_and_gdumb_train_on_is_shuffled_in_any_protocol():
    """Their minibatches are not the stream (every past experience again; the buffer), so
    ``--no-shuffle`` leaves them as they are: unshuffled, Cumulative trained experience after
    experience and forgot, GDumb class after class."""
    for name in ("cumulative", "gdumb"):
        runs = [
            run_baseline(name, "split-digits", 0, 100, RunConfig(experiences=3, shuffle=s))
            for s in (True, False)
        ]
        assert runs[0]["matrix"] == runs[1]["matrix"], name
