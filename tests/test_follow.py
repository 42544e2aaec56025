"""Follow mode: files learned once each, in arrival order; any stop resumable; live results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import streams
from lifelong import cli
from lifelong.config import RunConfig
from lifelong.runner import run
from tests.run_helpers import LIFELONG, ROOT, matrix, quiet

# process-spawning and whole-run tests: `make test-fast` leaves them out
pytestmark = pytest.mark.slow


def _task_file(path: Path, exp: streams.Experience) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        np.savez(
            f,
            x=exp.x_train.numpy(),
            y=exp.y_train.numpy(),
            x_test=exp.x_test.numpy(),
            y_test=exp.y_test.numpy(),
        )
    os.replace(tmp, path)  # appear whole, as a careful producer would write it


def test_follow_mode_picks_up_a_file_written_later(tmp_path):
    s = streams.get_stream("split-digits", experiences=2, seed=0)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    _task_file(inbox / "task-000.npz", s[0])
    out = tmp_path / "live"
    proc = subprocess.Popen(
        [
            *LIFELONG,
            "run",
            "--follow",
            str(inbox),
            "--out",
            str(out),
            "--max-experiences",
            "2",
            "--poll",
            "0.1",
            "--no-progress",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until the agent finished the first file
        if (out / "metrics.jsonl").exists() and "experience_end" in (
            out / "metrics.jsonl"
        ).read_text():
            break
        time.sleep(0.1)
    assert proc.poll() is None  # still running, waiting for more
    _task_file(inbox / "task-001.npz", s[1])
    out_text, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    R = matrix(out)
    assert R.shape == (2, 2) and R[1, 1] > 0.5
    assert np.isnan(R[0, 1])  # test set 1 was unknown after experience 0
    assert "average accuracy" in out_text


def test_follow_mode_bad_file_is_named(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    np.savez(inbox / "a.npz", x=np.zeros((4, 3)), y=np.array([0, 1, 0, 1]))
    with pytest.raises(
        streams.StreamError, match=r"a.npz: missing array\(s\) \['x_test', 'y_test'\]"
    ):
        run(
            RunConfig(follow=str(inbox), progress=False),
            tmp_path / "r",
            echo=quiet,
            follow_options={"max_experiences": 1, "poll_seconds": 0.05},
        )


def follow(inbox: Path, out: Path, echo=quiet, **options):
    """An in-process follow run that stops once it has been idle for 0.2 s."""
    cfg = RunConfig(follow=str(inbox), progress=False, iters=1, memory=100)
    opts = {"idle_timeout": 0.2, "poll_seconds": 0.05, **options}
    return run(cfg, out, follow_options=opts, echo=echo)


@pytest.fixture(scope="module")
def digits() -> streams.Stream:
    return streams.get_stream("split-digits", experiences=3, seed=0)


def test_any_stop_is_resumable_and_takes_new_files(tmp_path, digits):
    """--idle-timeout (or --max-experiences) stops a follow run, never ends it: the same
    command resumes it and learns the files that came since."""
    inbox, out = tmp_path / "inbox", tmp_path / "live"
    inbox.mkdir()
    _task_file(inbox / "t0.npz", digits[0])
    said: list[str] = []
    first = follow(inbox, out, echo=said.append)
    assert not first.interrupted and not first.summary["complete"]
    assert first.summary["status"] == "stopped" and first.matrix.shape == (1, 1)
    assert any("stopped after 1 new file(s)" in m for m in said), said
    _task_file(inbox / "t1.npz", digits[1])
    second = follow(inbox, out)
    assert second.matrix.shape == (2, 2) and second.summary["examples"] == (
        digits[0].n_train + digits[1].n_train
    )
    third = follow(inbox, out, max_experiences=1)  # nothing new: stops, learns nothing
    assert np.array_equal(third.matrix, second.matrix, equal_nan=True)


def test_files_are_taken_in_arrival_order_each_once(tmp_path, digits):
    """A file whose name sorts before one already taken is the next experience; hidden
    files are never taken; a learned file that changes is refused."""
    inbox, out = tmp_path / "inbox", tmp_path / "live"
    inbox.mkdir()
    _task_file(inbox / "b.npz", digits[0])
    follow(inbox, out)
    _task_file(inbox / "a.npz", digits[1])  # sorts first, arrived second
    _task_file(inbox / ".hidden.npz", digits[2])
    result = follow(inbox, out)
    assert result.matrix.shape == (2, 2)
    ends = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e["experience"] for e in ends if e["type"] == "experience_end"] == [0, 1]
    assert result.summary["examples"] == digits[0].n_train + digits[1].n_train
    _task_file(inbox / "b.npz", digits[2])  # rewrite a learned file
    with pytest.raises(streams.StreamError, match=r"b.npz, learned as experience 0, has changed"):
        follow(inbox, out)


def test_a_file_still_being_written_is_waited_for(tmp_path, digits):
    """A task file that is not yet a whole zip archive is waited for, then taken."""
    inbox, out = tmp_path / "inbox", tmp_path / "live"
    inbox.mkdir()
    path = inbox / "t0.npz"
    _task_file(tmp_path / "whole.npz", digits[0])
    whole = (tmp_path / "whole.npz").read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    said: list[str] = []

    def echo(message: str) -> None:
        said.append(message)
        if message.startswith("waiting for t0.npz"):  # the writer finishes its file
            path.write_bytes(whole)

    result = follow(inbox, out, echo=echo, idle_timeout=None, max_experiences=1)
    assert result.matrix.shape == (1, 1) and result.summary["examples"] == digits[0].n_train
    assert sum(m.startswith("waiting for t0.npz") for m in said) == 1


def test_throughput_counts_training_not_waiting(tmp_path, digits):
    """Seconds spent waiting for files are not training time."""
    inbox, out = tmp_path / "inbox", tmp_path / "live"
    inbox.mkdir()
    _task_file(inbox / "t0.npz", digits[0])
    started = time.perf_counter()
    result = follow(inbox, out, idle_timeout=1.5)
    wall = time.perf_counter() - started
    assert wall >= 1.5 and result.summary["train_seconds"] < wall - 1.4


def test_sigterm_while_idle_exits_143_with_a_checkpoint(tmp_path, digits):
    """A signal while the agent waits for files stops it like one during training: exit
    143 (128 + SIGTERM), "stopped; checkpoint written", and the same command resumes it."""
    inbox, out = tmp_path / "inbox", tmp_path / "live"
    inbox.mkdir()
    _task_file(inbox / "t0.npz", digits[0])
    cmd = [*LIFELONG, "run", "--follow", str(inbox), "--out", str(out), "--poll", "0.05"]
    proc = subprocess.Popen(
        [*cmd, "--no-progress", "--iters", "1", "--memory", "100"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 300
    while not (out / "summary.json").exists():  # live results: written at experience ends
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    assert json.loads((out / "summary.json").read_text())["summary"]["status"] == "running"
    assert cli.main(["report", str(out)]) == 0  # a live run folder reports
    assert (out / "report" / "forgetting_curves.png").exists()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "stopped; checkpoint written" in err, err
    _task_file(inbox / "t1.npz", digits[1])
    result = follow(inbox, out)
    assert result.matrix.shape == (2, 2)


def test_checkpoints_from_before_the_ledger_rebuild_it_by_name(tmp_path, digits):
    """A checkpoint without a ledger took files in name order: resume that way."""
    from lifelong.follow import FolderStream

    for name, e in (("b.npz", digits[1]), ("a.npz", digits[0]), ("c.npz", digits[2])):
        _task_file(tmp_path / name, e)
    folder = FolderStream(tmp_path, 10)
    folder.resume_by_name(2)
    assert [e["name"] for e in folder.ledger] == ["a.npz", "b.npz"]
    assert folder.get(1).n_train == digits[1].n_train
