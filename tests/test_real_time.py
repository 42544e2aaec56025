"""The real-time protocol: a stream clock counted in compute, near-future accuracy, and the
run folder's record of the batches learned; a slow stream changes nothing, and a run
stopped under the clock resumes exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lifelong.config import ConfigError, RunConfig
from lifelong.runner import run
from lifelong.runner.clock import StreamClock, replay_update_cost
from tests.run_helpers import matrix, quiet, stop_at


@pytest.mark.parametrize(
    "cost, learned",
    [
        (60.0, list(range(8))),  # plain replay's cost: every batch
        (61.0, [0, 2, 4, 6]),  # a little more: busy when the next arrives, so every other
        (150.0, [0, 3, 6]),  # 2.5 intervals: free again at the third
        (10.0, list(range(8))),
    ],
)
def test_the_clock_lets_a_learner_learn_what_its_cost_leaves_time_for(cost, learned):
    clock = StreamClock.for_run(batch_size=10, stream_rate=1.0)
    assert clock.interval == replay_update_cost(10) == 60.0  # (10 + 10 rows) x 3
    for _ in range(8):
        if clock.arrive():
            clock.took(cost)
    assert clock.learned == learned and clock.arrived == 8
    assert clock.learned_share == len(learned) / 8
    again = StreamClock.from_dict(json.loads(json.dumps(clock.to_dict())))
    assert again == clock  # what a checkpoint keeps is the whole clock


def test_a_faster_stream_halves_the_interval():
    assert StreamClock.for_run(10, 2.0).interval == 30.0
    with pytest.raises(ConfigError, match="stream_rate must be positive"):
        RunConfig(real_time=True, stream_rate=0).validate()


def summary_of(run_dir) -> dict:
    return json.loads((run_dir / "summary.json").read_text())["summary"]


def cfg(**kw) -> RunConfig:
    base = dict(stream="split-digits", experiences=2, seed=2, memory=60, progress=False)
    return RunConfig(**{**base, **kw}).validate()


def test_a_stream_slow_enough_is_the_waiting_run_plus_its_measures(tmp_path):
    """Real time with time for every batch learns what the waiting run learns, exactly
    (predicting ahead changes nothing), and adds the protocol's measures."""
    waiting = run(cfg(), tmp_path / "waiting", echo=quiet)
    slow = run(cfg(real_time=True, stream_rate=0.01), tmp_path / "slow", echo=quiet)
    assert np.array_equal(slow.matrix, waiting.matrix)
    s = summary_of(tmp_path / "slow")
    assert s["learned_share"] == 1.0 and s["batches_learned"] == s["batches_revealed"]
    assert s["online_accuracy"] == summary_of(tmp_path / "waiting")["online_accuracy"]
    assert 0.3 < s["near_future_accuracy"] < 1  # learned, yet not the next batch's labels
    assert "learned_share" not in summary_of(tmp_path / "waiting")


def test_at_the_default_rate_the_default_learns_a_share_and_answers_every_batch(tmp_path):
    out = tmp_path / "rt"
    result = run(cfg(real_time=True), out, echo=quiet)
    s = summary_of(out)
    revealed = s["batches_revealed"]
    # the default spends 5 updates of 10 + 32 replayed a batch: about 10x plain replay's
    assert 0.05 < s["learned_share"] < 0.2 and revealed == sum(
        -(-n // 10) for n in (len(e.y_train) for e in _train_sets(2))
    )
    assert s["examples"] == 10 * s["batches_learned"]  # only learned batches are examples
    assert 0.9 < s["compute_used_share"] <= 1.2
    ends = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    ends = [e for e in ends if e["type"] == "experience_end"]
    learned = [b for e in ends for b in e["learned_batches"]]  # the folder says which
    assert len(learned) == s["batches_learned"] and learned == sorted(set(learned))
    assert ends[-1]["answered_seen"] + s["examples"] == ends[-1]["position"]
    assert result.matrix[-1].mean() > 0.3  # it still learned something of both


def test_a_run_stopped_under_the_clock_resumes_exactly(tmp_path, monkeypatch):
    reference = run(cfg(real_time=True, stream_rate=0.5), tmp_path / "ref", echo=quiet)
    out = tmp_path / "stopped"
    with stop_at(monkeypatch, tmp_path, 9):
        stopped = run(cfg(real_time=True, stream_rate=0.5), out, echo=quiet)
    assert stopped.interrupted
    resumed = run(cfg(real_time=True, stream_rate=0.5), out, echo=quiet)
    assert np.array_equal(resumed.matrix, reference.matrix)
    assert summary_of(out) | {"train_seconds": 0, "samples_per_second": 0} == summary_of(
        tmp_path / "ref"
    ) | {"train_seconds": 0, "samples_per_second": 0}
    assert np.array_equal(matrix(out), matrix(tmp_path / "ref"))


def _train_sets(n: int):
    import streams

    return list(streams.get_stream("split-digits", experiences=n, seed=2))
