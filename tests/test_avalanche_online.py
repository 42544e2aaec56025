"""Online accuracy for Avalanche's strategies (``lifelong/compare/online.py``): every
incoming example answered once, right before its first update, never a replayed row; on a
stream that does not wait, the batches a strategy was too busy for answered too; measuring
changes nothing the strategy learns. Real Avalanche strategies on scikit-learn's digits."""

from __future__ import annotations

import pytest
import torch

import streams
from lifelong.compare import run_baseline
from lifelong.compare.baseline_model import baseline_model
from lifelong.compare.schedule import answers_on_arrival, batches_per_experience, schedule
from lifelong.config import RunConfig

CFG = RunConfig(experiences=3, progress=False)


def frozen_accuracy(stream_name: str, seed: int) -> float:
    """The untrained baseline model's accuracy on every training example of the stream (the
    model ``run_baseline`` builds: same seed, same network)."""
    stream = streams.get_stream(stream_name, experiences=3, seed=seed)
    torch.manual_seed(seed)
    model = baseline_model(stream, CFG.hidden).eval()
    with torch.no_grad():
        hits = sum(int((model(e.x_train).argmax(1) == e.y_train).sum()) for e in stream)
    return hits / sum(e.n_train for e in stream)


@pytest.mark.parametrize("name", ["replay", "der++", "naive"])
def test_each_incoming_example_is_answered_once_before_its_update(name):
    """At a learning rate too small to change an answer, a strategy's online accuracy is the
    untrained model's on the training stream, over exactly its examples: Replay's replayed
    rows (in the same minibatches) are not counted, DER++'s buffer rows neither. At a real
    learning rate the strategy learns exactly what it learns unmeasured (same matrix, same
    compute), and answers better than the frozen model."""
    n = sum(e.n_train for e in streams.get_stream("split-digits", experiences=3))
    frozen = run_baseline(name, "split-digits", 0, 50, CFG, options={"lr": 1e-9})
    assert frozen["online_seen"] == n
    assert frozen["online_accuracy"] == pytest.approx(frozen_accuracy("split-digits", 0), abs=2e-3)
    # near-future: every minibatch but the first, by weights as frozen
    assert frozen["near_future_accuracy"] == pytest.approx(frozen["online_accuracy"], abs=1e-2)
    measured = run_baseline(name, "split-digits", 0, 50, CFG)
    unmeasured = run_baseline(name, "split-digits", 0, 50, CFG, online=False)
    assert measured["matrix"] == unmeasured["matrix"]
    assert measured["compute_units_per_batch"] == unmeasured["compute_units_per_batch"]
    assert unmeasured["online_accuracy"] is None
    assert measured["online_accuracy"] > frozen["online_accuracy"] + 0.2


def test_a_busy_strategy_answers_every_batch_on_arrival():
    """On a stream that does not wait, with a cost that lets Replay learn about one batch in
    three: every revealed example is answered once, by the model of its window's iterations
    made before it arrived, and so is the batch after it (near-future accuracy); a batch it
    learns is answered before its own update."""
    stream = streams.get_stream("split-digits", experiences=3, seed=1)
    sizes = batches_per_experience(stream, CFG.batch_size)
    learned = schedule(sizes, cost=[2.5] * len(sizes), interval=1.0)
    due = list(answers_on_arrival(stream, learned, CFG.batch_size, 1, CFG.shuffle, 0, True))
    for i, (pairs, answers) in enumerate(zip(learned, due, strict=True)):
        online = [a for a in answers if not a.near]
        assert len(online) == sizes[i] and len(answers) == 2 * sizes[i] - 1
        taken = [b for _, b in pairs]
        # arrival b: one iteration per batch learned before it (full batches: one each)
        assert [a.after for a in online] == [sum(t < b for t in taken) for b in range(sizes[i])]
    r = run_baseline("replay", "split-digits", 1, 50, CFG, learned=learned)
    assert r["online_seen"] == sum(e.n_train for e in stream)
    assert 0.0 < r["online_accuracy"] < 1.0 and 0.0 < r["near_future_accuracy"] < 1.0
    assert r["learned_share"] == pytest.approx(sum(map(len, learned)) / sum(sizes))


@pytest.mark.parametrize("name", ["replay", "der++", "mer"])
def test_under_late_labels_each_arrival_is_answered_by_a_model_that_never_learned_past_it(
    monkeypatch, name
):
    """Labels 3 batches late, experiences of uneven length (a window's minibatches straddle
    the previous experience's partial last batch): when each arriving batch is answered, the
    strategy has trained on rows whose labels came before that arrival only, and on all of
    them but less than a minibatch. Every example answered once, at lr ~0 as the frozen model
    would; at a real rate better, and the matrix is what it learns unmeasured."""
    from lifelong.compare import online

    cfg = RunConfig(experiences=3, progress=False, label_delay=3)
    stream = streams.get_stream("split-digits", experiences=3, seed=0)
    n_train = [e.n_train for e in stream]
    assert any(n % cfg.batch_size for n in n_train)  # partial last batches to straddle
    sizes = batches_per_experience(stream, cfg.batch_size)
    learned = schedule(sizes, delay=3)
    frozen = run_baseline(name, "split-digits", 0, 50, cfg, options={"lr": 1e-9}, learned=learned)
    assert frozen["online_seen"] == sum(n_train)
    assert frozen["online_accuracy"] == pytest.approx(frozen_accuracy("split-digits", 0), abs=2e-3)
    assert frozen["near_future_accuracy"] == pytest.approx(frozen["online_accuracy"], abs=2e-2)

    trained, left, answered = [0], [0], []  # the window's rows trained; each answer's count
    plugin_for, hits = online.online_plugin, online._hits

    def recording(*args, **kwargs):  # the plugin, counting the experience rows it trains
        plugin = plugin_for(*args, **kwargs)
        start, begin, step = (
            plugin.start_window,
            plugin.before_training_exp,
            plugin.before_training_iteration,
        )

        def start_window(due):
            trained[0] = 0
            return start(due)

        def before_training_exp(strategy, **more):
            left[0] = len(strategy.adapted_dataset)
            return begin(strategy, **more)

        def before_training_iteration(strategy, **more):
            out = step(strategy, **more)  # its answers first, then this minibatch's update
            n = min(left[0], cfg.batch_size, len(strategy.mb_y))
            left[0] -= n
            trained[0] += n
            return out

        plugin.start_window, plugin.before_training_exp = start_window, before_training_exp
        plugin.before_training_iteration = before_training_iteration
        return plugin

    def counted_hits(*args, **kwargs):
        answered.append(trained[0])
        return hits(*args, **kwargs)

    monkeypatch.setattr(online, "online_plugin", recording)
    monkeypatch.setattr(online, "_hits", counted_hits)
    measured = run_baseline(name, "split-digits", 0, 50, cfg, learned=learned)
    due = list(answers_on_arrival(stream, learned, cfg.batch_size, 0, cfg.shuffle, 3, True))
    assert len(answered) == sum(map(len, due))  # one count per answer, in the schedule's order
    first = [sum(sizes[:e]) for e in range(len(sizes))]
    rows = lambda e, b: min(cfg.batch_size, n_train[e] - b * cfg.batch_size)  # noqa: E731
    counts = iter(answered)
    for w, answers in enumerate(due):
        online_b = 0
        for a in sorted(answers, key=lambda a: a.after):  # the plugin's order
            count = next(counts)
            if a.near:
                continue
            arrival = first[w] + online_b
            online_b += 1
            labelled = [p for p in learned[w] if first[p[0]] + p[1] + 3 < arrival]
            allowed = sum(rows(*p) for p in labelled)
            assert allowed - cfg.batch_size < count <= allowed, (w, online_b - 1)
    unmeasured = run_baseline(name, "split-digits", 0, 50, cfg, learned=learned, online=False)
    assert measured["matrix"] == unmeasured["matrix"]
    assert measured["online_accuracy"] > frozen["online_accuracy"] + 0.05  # MER: +0.1


def test_no_online_accuracy_where_it_has_no_meaning():
    """GDumb learns its buffer from scratch and Cumulative every past experience again, so
    neither has one."""
    for name in ("gdumb", "cumulative"):
        assert run_baseline(name, "split-digits", 0, 50, CFG)["online_accuracy"] is None


def test_near_future_answers_each_minibatch_with_the_weights_of_two_minibatches_back():
    """As minibatch t - 1 arrives the model that learned up to t - 2 predicts minibatch t:
    the plugin answers t with the weights it met at t - 1. A scripted model that, when
    minibatch t arrives, predicts class t, and minibatches labelled t - 1: every near-future
    answer is right (the weights of one arrival back said t - 1), every online answer wrong,
    and the live weights are put back each time."""
    from types import SimpleNamespace

    from lifelong.compare.online import online_plugin

    model = torch.nn.Linear(4, 8)
    plugin = online_plugin("naive", near_future=True)
    strategy = SimpleNamespace(model=model, device=torch.device("cpu"), train_mb_size=5)
    strategy.adapted_dataset = range(5 * 7)
    plugin.before_training_exp(strategy)
    for t in range(7):
        with torch.no_grad():  # what "learning up to t - 1" made of the model
            model.weight.zero_()
            model.bias.copy_(torch.nn.functional.one_hot(torch.tensor(t), 8).float())
        live = {k: v.clone() for k, v in model.state_dict().items()}
        strategy.mb_x = torch.randn(5, 4)
        strategy.mb_y = torch.full((5,), max(t - 1, 0))
        strategy.mb_task_id = torch.zeros(5, dtype=torch.int64)
        plugin.before_training_iteration(strategy)
        assert all(torch.equal(v, live[k]) for k, v in model.state_dict().items())
    assert plugin.near_seen == 5 * 6  # every minibatch but the first has one behind it
    assert plugin.near_future_accuracy == 1.0
    assert plugin.correct == 5  # online: only minibatch 0 (labelled 0, predicted 0)


def test_compare_without_near_future_measures_it_for_no_method(tmp_path):
    """compare --no-near-future: no method's near-future accuracy (ours keeps no clock, no
    plugin keeps weights back), online accuracy still there, the table without the column."""
    import json

    from lifelong.cli import main

    out = tmp_path / "c"
    args = ["compare", "--stream", "split-digits", "--experiences", "2", "--seeds", "0"]
    args += ["--methods", "ours,naive", "--memory", "60", "--no-near-future"]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert {r["method"] for r in runs} == {"ours", "naive"}
    for r in runs:
        assert r.get("near_future_accuracy") is None and r["online_accuracy"] > 0.3
    assert "near-future" not in (out / "table.md").read_text()


def test_a_strategy_that_draws_from_pythons_random_repeats_its_run():
    """A-GEM fills its memory with ``random.shuffle``: the same seed gives the same run
    however much of Python's random stream ran before it (it once differed rerun to rerun)."""
    import random

    first = run_baseline("a-gem", "split-digits", 0, 50, CFG, online=False)
    random.random()  # whatever else drew from it since
    again = run_baseline("a-gem", "split-digits", 0, 50, CFG, online=False)
    assert again["matrix"] == first["matrix"]
    large = run_baseline("a-gem", "split-digits", 2**33, 50, CFG, online=False)  # any seed
    assert len(large["matrix"]) == 3  # ours takes (`lifelong run --seed`), theirs too
