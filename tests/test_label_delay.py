"""Label delay (Csaba et al., NeurIPS 2024): each batch is predicted on arrival and learned
``label_delay`` batches later; the last ones' labels never come. A run stopped with batches
waiting resumes them exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lifelong.config import ConfigError, RunConfig
from lifelong.runner import run
from tests.run_helpers import quiet, stop_at


def cfg(**kw) -> RunConfig:
    base = dict(stream="split-digits", experiences=2, seed=4, memory=60, progress=False)
    return RunConfig(**{**base, **kw}).validate()


def summary_and_ends(out):
    s = json.loads((out / "summary.json").read_text())["summary"]
    events = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return s, [e for e in events if e["type"] == "experience_end"]


def test_labels_ten_batches_late_are_learned_in_order_and_the_last_never(tmp_path):
    waiting = run(cfg(), tmp_path / "now", echo=quiet)
    late = run(cfg(label_delay=10), tmp_path / "late", echo=quiet)
    s, ends = summary_and_ends(tmp_path / "late")
    revealed = s["batches_revealed"]
    learned = [b for e in ends for b in e["learned_batches"]]
    assert learned == list(range(revealed - 10))  # in arrival order, the last 10 never
    assert s["batches_learned"] == len(learned) and s["compute_used_share"] is None
    # online accuracy: every batch answered on arrival (before its labels came)
    assert ends[-1]["answered_seen"] == ends[-1]["position"]
    assert 0.2 < s["online_accuracy"] < 1 and s["learned_share"] < 1
    # experience 0 was evaluated with its last 10 batches still waiting for their labels
    assert ends[0]["learned_batches"][-1] == ends[0]["batches_revealed"] - 11
    assert not np.array_equal(late.matrix, waiting.matrix)
    assert late.matrix[-1].mean() > 0.5  # it learned from the late labels


def test_a_run_stopped_with_labels_waiting_resumes_exactly(tmp_path, monkeypatch):
    reference = run(cfg(label_delay=7), tmp_path / "ref", echo=quiet)
    with stop_at(monkeypatch, tmp_path, 12):
        assert run(cfg(label_delay=7), tmp_path / "stopped", echo=quiet).interrupted
    from lifelong import checkpoint

    waiting = checkpoint.load(tmp_path / "stopped").progress["pending"]
    assert len(waiting) == 7  # stopped with seven batches waiting for their labels
    resumed = run(cfg(label_delay=7), tmp_path / "stopped", echo=quiet)
    assert np.array_equal(resumed.matrix, reference.matrix)
    mine, _ = summary_and_ends(tmp_path / "stopped")
    theirs, _ = summary_and_ends(tmp_path / "ref")
    timing = {"train_seconds": 0, "samples_per_second": 0}
    assert mine | timing == theirs | timing


def test_label_delay_with_the_clock_drops_labels_that_come_while_busy(tmp_path):
    run(cfg(label_delay=5, real_time=True, fit_compute=False), tmp_path / "rt", echo=quiet)
    s, ends = summary_and_ends(tmp_path / "rt")
    learned = [b for e in ends for b in e["learned_batches"]]
    assert learned == sorted(set(learned)) and max(learned) < s["batches_revealed"] - 5
    assert 0 < s["learned_share"] < 0.3  # five updates of 42 rows a batch: busy most of it


def test_label_delay_needs_a_named_stream():
    with pytest.raises(ConfigError, match="label_delay needs a named stream"):
        RunConfig(follow="inbox", label_delay=3).validate()
    with pytest.raises(ConfigError, match="label_delay must be zero or positive"):
        RunConfig(label_delay=-1).validate()


def test_avalanche_schedule_learns_what_our_runner_learns_in_each_window(tmp_path):
    """The schedule compare gives Avalanche under label delay is the rule our runner keeps:
    in each experience's window, the batches whose labels came in it (stream numbers)."""
    import streams
    from lifelong.compare.schedule import batches_per_experience, schedule

    run(cfg(label_delay=7), tmp_path / "late", echo=quiet)
    _, ends = summary_and_ends(tmp_path / "late")
    sizes = batches_per_experience(
        streams.get_stream("split-digits", experiences=2, seed=4), batch_size=10
    )
    starts = np.cumsum([0, *sizes])
    windows = schedule(sizes, delay=7)
    assert [[int(starts[e] + b) for e, b in w] for w in windows] == [
        e["learned_batches"] for e in ends
    ]
    assert schedule([3, 4, 2], delay=2) == [
        [(0, 0)],
        [(0, 1), (0, 2), (1, 0), (1, 1)],
        [(1, 2), (1, 3)],
    ]
    # on a clock too: busy 2.5 arrivals a batch, it learns at arrivals 2, 5 and 8 the
    # batch 2 behind (arrivals 0 and 1 bring no labels: it stays free)
    assert schedule([3, 4, 2], delay=2, cost=[2.5] * 3, interval=1.0) == [
        [(0, 0)],
        [(1, 0)],
        [(1, 3)],
    ]


def test_a_late_window_on_a_task_stream_trains_each_task_apart():
    """Labels late across a task boundary: the window holds the previous task's tail, which a
    multi-head strategy trains as its own experience, under its own task; on a class stream
    the window is one experience holding both experiences' classes."""
    import streams
    from lifelong.compare.schedule import batches_per_experience, schedule, scheduled_stream

    for name, pieces_in_window_1 in (("split-task-digits", 2), ("split-digits", 1)):
        stream = streams.get_stream(name, experiences=3, seed=1)
        sizes = batches_per_experience(stream, 10)
        learned = schedule(sizes, delay=5)
        pieces, windows = scheduled_stream(stream, learned, 10, seed=1, shuffle=True)
        assert len(windows[1]) == pieces_in_window_1
        first = [pieces[k] for k in windows[1]]
        assert sum(p.n_train for p in first) == sum(
            min(10, stream[e].n_train - 10 * b) for e, b in learned[1]
        )
        labels = set(torch.cat([p.y_train for p in first]).tolist())
        assert labels == set(stream[0].classes) | set(stream[1].classes)
        if stream.task_aware:
            assert [p.task_id for p in first] == [stream[0].task_id, stream[1].task_id]
            assert set(first[0].y_train.tolist()) <= set(stream[0].classes)


def test_compare_gives_every_method_the_same_late_labels(tmp_path, capsys):
    from lifelong.cli import main

    args = ["compare", "--stream", "split-task-digits", "--experiences", "3", "--seeds", "0"]
    args += ["--methods", "ours,replay,a-gem", "--memory", "60", "--no-progress"]
    assert main([*args, "--label-delay", "10", "--out", str(tmp_path / "c")]) == 0
    assert "labels came 10 batches late" in capsys.readouterr().out
    record = json.loads((tmp_path / "c" / "results.json").read_text())
    assert record["label_delay"] == 10
    runs = {r["method"]: r for r in record["runs"]}
    revealed = runs["ours"]["learned_share"]
    assert 0.9 < revealed < 1  # the last 10 batches' labels never came
    for name in ("replay", "a-gem"):
        assert runs[name]["learned_share"] == pytest.approx(revealed)
        assert len(runs[name]["matrix"]) == 3  # a row at each experience's end
        assert 0.3 < runs[name]["average_accuracy"] <= 1
    # a folder of another delay is refused, not mixed
    assert main([*args, "--out", str(tmp_path / "c")]) == 2
    assert "with labels 10 batches late" in capsys.readouterr().err
