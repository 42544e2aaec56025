"""``lifelong run`` end to end: run folders, resume after SIGKILL and Ctrl-C, follow mode."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import numpy as np
import pytest
import torch

import streams
from lifelong import checkpoint
from lifelong.config import ConfigError, RunConfig
from lifelong.errors import BadBatchError
from lifelong.learner.agent import Agent
from lifelong.runner import run
from stores import EpisodicStore
from tests.run_helpers import (
    LIFELONG,
    ROOT,
    SMALL,
    events_without_timing,
    matrix,
    quiet,
    small_cfg,
    start_paused,
)

# process-spawning and whole-run tests: `make test-fast` leaves them out
pytestmark = pytest.mark.slow


def test_run_folder_contents(reference):
    for name in (
        "config.toml",
        "metrics.jsonl",
        "accuracy_matrix.csv",
        "summary.json",
        "checkpoint/state.pt",
        "memory/memory.sqlite",
        "report/forgetting_curves.png",
        "report/accuracy_matrix.png",
        "report/index.html",
    ):
        assert (reference / name).exists(), name
    R = matrix(reference)
    assert R.shape == (3, 3) and R[-1].mean() > 0.5
    summary = json.loads((reference / "summary.json").read_text())["summary"]
    cfg = RunConfig()  # defaults: `iters` updates per incoming batch of `batch_size`
    assert summary["gradient_steps_per_example"] == pytest.approx(
        cfg.iters / cfg.batch_size, abs=0.01
    )
    assert summary["complete"] and summary["memories"] == 100
    assert EpisodicStore.open(reference / "memory", readonly=True).verify()["ok"]
    # no pickles: the checkpoint loads with weights_only=True
    state = torch.load(reference / "checkpoint" / "state.pt", weights_only=True)
    assert "model" in state


def test_same_seed_same_numbers(reference, tmp_path):
    result = run(small_cfg(), tmp_path / "again", echo=quiet)
    assert np.array_equal(result.matrix, matrix(reference))


def test_sigkill_then_resume_gives_same_matrix(reference, tmp_path):
    out = tmp_path / "killed"
    # kill twice between checkpoints (every 7 steps; experience 0 ends at step 58), the
    # second time in experience 1 after resuming
    for step in (23, 80):
        proc = start_paused(out, step, tmp_path)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    saved = checkpoint.load(out)
    assert saved is not None and not saved.progress["done"]  # it really was cut short
    assert saved.state["counters"][0] == 77  # the last checkpoint before step 80
    done = subprocess.run(
        [*LIFELONG, "run", *SMALL, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stderr
    assert np.array_equal(matrix(out), matrix(reference))
    assert EpisodicStore.open(out / "memory", readonly=True).verify()["ok"]
    assert events_without_timing(out) == events_without_timing(reference)


def test_ctrl_c_checkpoints_then_resumes(reference, tmp_path):
    out = tmp_path / "interrupted"
    proc = start_paused(out, 30, tmp_path)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "stopped; checkpoint written" in err
    assert checkpoint.load(out).state["counters"][0] == 30
    result = run(small_cfg(), out, echo=quiet)
    assert np.array_equal(result.matrix, matrix(reference))


def test_incompatible_run_folder_is_refused(reference):
    before = (reference / "config.toml").read_text()
    with pytest.raises(ConfigError, match=r"different config \(memory: 100 \(folder\) vs 200"):
        run(small_cfg(memory=200), reference, echo=quiet)
    assert (reference / "config.toml").read_text() == before


def test_rerun_of_finished_run_changes_nothing(reference):
    before = matrix(reference)
    result = run(small_cfg(progress=True), reference, echo=quiet)
    assert np.array_equal(result.matrix, before)


def test_a_class_incremental_run_records_no_task_as_a_served_one(reference):
    """split streams number every experience task 0; the learner is given no task id there,
    so the memory records none, as a served run of the same batches does."""
    with EpisodicStore.open(reference / "memory", readonly=True) as mem:
        assert len(mem) > 0 and set(mem.catalog.cols["task"].tolist()) == {-1}
        assert mem.stats()["tasks"] == {"none": len(mem)}


def test_a_result_gives_the_trained_agent_and_its_memory(reference):
    """run() hands back what a user needs to use the agent: it predicts as the matrix says
    (numpy in), keys examples, and its memory answers a search by those keys."""
    result = run(small_cfg(), reference, echo=quiet)  # complete: read back, nothing rebuilt
    s = streams.get_stream("split-digits", experiences=3, seed=1)
    for j, exp in enumerate(s):
        got = result.agent.accuracy(exp.x_test.numpy(), exp.y_test.numpy(), exp.task_id)
        assert got == pytest.approx(result.matrix[-1, j], abs=1e-6)
    with result.memory() as mem:
        stored = mem.fetch(mem.catalog.ids[:3])
        hits = mem.search(result.agent.keys(torch.from_numpy(stored.values)), k=1)
        assert list(hits.ids[:, 0]) == list(mem.catalog.ids[:3])


def test_bad_example_mid_stream_stops_with_checkpoint_intact(tmp_path, monkeypatch):
    good = streams.get_stream("split-digits", experiences=2, seed=0)

    def build(i):
        e = good[i]
        if i == 1:
            x = e.x_train.clone()
            x[17, 0, 3, 3] = float("inf")
            return streams.Experience(1, x, e.y_train, e.x_test, e.y_test, 0, e.classes)
        return e

    bad = streams.Stream("bad-digits", "class", 2, 10, good.input_shape, build)
    cfg = small_cfg(stream="bad-digits", experiences=2, checkpoint_every=0)
    # the runner checks an experience when it starts: the error names the example's index in
    # the experience's training set, and not one of its batches was learned
    learned = []
    real = Agent.observe
    monkeypatch.setattr(
        Agent,
        "observe",
        lambda self, *a, **k: (learned.append(k["experience"]), real(self, *a, **k))[1],
    )
    with pytest.raises(BadBatchError, match=r"experience 1: example 17 has NaN or inf"):
        run(cfg, tmp_path / "bad", stream=bad, echo=quiet)
    assert learned and set(learned) == {0}
    progress = checkpoint.load(tmp_path / "bad").progress
    assert progress["experience"] == 1 and len(progress["rows"]) == 1
    st = EpisodicStore.open(tmp_path / "bad" / "memory", readonly=True)
    assert st.verify()["ok"] and len(st) > 0


def test_task_free_stream_runs_and_its_memories_have_no_task(tmp_path):
    """Blurry streams hide task ids: memories are written with none, through every flush."""
    cfg = small_cfg(stream="blurry-digits", learned_rates=False, checkpoint_every=20)
    result = run(cfg, tmp_path / "blurry", echo=quiet)
    assert result.summary["complete"] and result.matrix.shape == (3, 3)
    st = EpisodicStore.open(tmp_path / "blurry" / "memory", readonly=True)
    assert len(st) == 100 and st.verify()["ok"]
    assert (st.fetch(st.catalog.ids).tasks == -1).all()


def test_background_checkpoint_holds_the_state_at_save_time(tmp_path):
    """Training goes on while the writer thread writes: the checkpoint must not see it."""
    rng = np.random.default_rng(0)
    store = EpisodicStore.create(tmp_path / "mem", dim=4, value_shape=(2,))
    store.write(rng.random((3, 4), np.float32), rng.random((3, 2), np.float32), [0, 1, 2])
    weights = torch.nn.Linear(3, 2)
    before = {k: v.clone() for k, v in weights.state_dict().items()}
    writer = checkpoint.Writer(tmp_path)
    agent_state = {"model": weights.state_dict(), "memory": {}, "counters": torch.tensor([1])}
    writer.save(agent_state, {"step": 1}, store)
    with torch.no_grad():  # the next steps, racing the writer
        weights.weight.add_(1.0)
    store.write(rng.random((2, 4), np.float32), rng.random((2, 2), np.float32), [3, 4])
    writer.wait()
    saved = checkpoint.load(tmp_path)
    assert saved.progress == {"step": 1}
    assert torch.equal(saved.state["model"]["weight"], before["weight"])
    EpisodicStore.restore(tmp_path / "restored", saved.snapshot)
    with EpisodicStore.open(tmp_path / "restored", readonly=True) as back:
        assert len(back) == 3 and back.verify()["ok"]
    store.close()
    # a write that fails surfaces at the next wait, naming the problem
    (tmp_path / "gone").mkdir()
    broken = checkpoint.Writer(tmp_path / "gone" / "deeper")
    with EpisodicStore.open(tmp_path / "mem") as store:
        broken.save({"model": weights.state_dict()}, {"step": 2}, store)
        with pytest.raises(FileNotFoundError):
            broken.wait()
        broken.wait()  # reported once


@pytest.mark.parametrize("seconds", [0.0, 1e-9])
def test_checkpoints_by_elapsed_time(tmp_path, monkeypatch, seconds):
    saves = []
    real = checkpoint.Writer.save
    monkeypatch.setattr(checkpoint.Writer, "save", lambda *a: (saves.append(1), real(*a)))
    cfg = small_cfg(experiences=2, checkpoint_every=0, checkpoint_seconds=seconds)
    res = run(cfg, tmp_path / "run", echo=quiet)
    steps = res.summary["gradient_steps"] // cfg.iters
    ends = 2 + 1  # each experience's end, and the run's
    assert len(saves) == (ends if seconds == 0 else steps + ends)


@pytest.mark.parametrize("threads, expected", [(0, 1), (2, 2)])
def test_run_sets_torch_threads_and_restores_them(tmp_path, monkeypatch, threads, expected):
    seen = []
    real = Agent.observe
    monkeypatch.setattr(
        Agent,
        "observe",
        lambda self, *a, **k: (seen.append(torch.get_num_threads()), real(self, *a, **k))[1],
    )
    before = torch.get_num_threads()
    run(small_cfg(experiences=1, learned_rates=False, threads=threads), tmp_path / "r", echo=quiet)
    assert set(seen) == {expected} and torch.get_num_threads() == before


def test_tensorboard_scalars_match_the_summary(reference):
    """Every run writes TensorBoard events: loss, accuracy per experience, average
    accuracy, forgetting and throughput; the last average accuracy is the summary's."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(reference / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {
        "train/loss",
        "accuracy/experience_0",
        "accuracy/experience_2",
        "metrics/average_accuracy",
        "metrics/forgetting_chaudhry2018",
        "speed/examples_per_second",
    } <= tags
    summary = json.loads((reference / "summary.json").read_text())["summary"]
    avg = events.Scalars("metrics/average_accuracy")
    assert len(avg) == 3 and avg[-1].value == pytest.approx(summary["average_accuracy"], abs=1e-6)
    assert avg[-1].step == summary["gradient_steps"] // RunConfig().iters
