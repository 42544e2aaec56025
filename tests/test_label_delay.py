"""Label delay (Csaba et al., NeurIPS 2024): each batch is predicted on arrival and learned
``label_delay`` batches later; the last ones' labels never come. A run stopped with batches
waiting resumes them exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

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


def test_compare_refuses_late_labels_it_cannot_give_avalanche(tmp_path, capsys):
    from lifelong.cli import main

    (tmp_path / "late.toml").write_text("label_delay = 10\n")
    args = ["compare", "--stream", "split-digits", "--config", str(tmp_path / "late.toml")]
    assert main([*args, "--out", str(tmp_path / "c")]) == 2
    assert "no Avalanche strategy with late labels" in capsys.readouterr().err
