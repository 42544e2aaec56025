"""A followed folder on the wall clock: each task file's ``t`` says when its examples came,
the learner is busy for the seconds its updates take, and a file whose times cannot be a
stream's is refused by name with nothing learned from it."""

from __future__ import annotations

import numpy as np
import pytest

import streams
from lifelong.config import ConfigError, RunConfig
from lifelong.follow import FolderStream
from lifelong.runner import run
from lifelong.runner.wall_clock import WallClock, clock_from_dict
from tests.run_helpers import quiet

pytestmark = pytest.mark.slow  # whole runs


@pytest.fixture(scope="module")
def digits() -> streams.Stream:
    return streams.get_stream("split-digits", experiences=2, seed=0)


def _timed_file(path, exp: streams.Experience, t) -> None:
    np.savez(
        path,
        x=exp.x_train.numpy(),
        y=exp.y_train.numpy(),
        x_test=exp.x_test.numpy(),
        y_test=exp.y_test.numpy(),
        t=np.asarray(t, dtype=np.float64),
    )


def _follow(inbox, out):
    cfg = RunConfig(follow=str(inbox), real_time=True, wall_clock=True, progress=False)
    options = {"idle_timeout": 0.2, "poll_seconds": 0.05}
    return run(cfg, out, follow_options=options, echo=quiet).summary


def test_a_slow_stream_is_learned_whole_and_a_burst_only_its_first_batch(tmp_path, digits):
    """Batches 10 s apart leave a learner time for each (whatever this machine's speed);
    a stream whose every example came at one instant leaves it time for one batch: busy
    with it, it answers the rest, in this file and the next (the stream's time, not the
    wait for the file, is what the clock counts)."""
    slow, burst = tmp_path / "slow", tmp_path / "burst"
    slow.mkdir(), burst.mkdir()
    start = 1.7e9  # a recorded stream's timestamps: seconds since the epoch
    for k, exp in enumerate(digits):
        _timed_file(slow / f"t{k}.npz", exp, start + k * 1e4 + np.arange(exp.n_train))
        _timed_file(burst / f"t{k}.npz", exp, np.full(exp.n_train, start))
    batches = sum(-(-e.n_train // 10) for e in digits)
    whole = _follow(slow, tmp_path / "slow-run")
    assert whole["clock"] == "wall" and whole["batches_revealed"] == batches
    assert whole["batches_learned"] == batches and whole["learned_share"] == 1.0
    once = _follow(burst, tmp_path / "burst-run")
    assert once["batches_revealed"] == batches and once["batches_learned"] == 1
    assert once["examples"] == 10  # learned: the first batch; every other one answered


@pytest.mark.parametrize(
    ("times", "problem"),
    [
        (None, "t0.npz: no t array"),
        (np.arange(5.0), r"t0.npz: t must be \d+ numbers"),
        ("nan", "t0.npz: t has NaN or inf at example 3"),
        ("back", r"t0.npz: t goes back at example 7 \(6.0 -> 0.0\)"),
    ],
)
def test_a_file_whose_times_are_not_a_streams_is_refused_by_name(tmp_path, digits, times, problem):
    exp = digits[0]
    t = np.arange(float(exp.n_train))
    if times is None:
        np.savez(
            tmp_path / "t0.npz",
            x=exp.x_train.numpy(),
            y=exp.y_train.numpy(),
            x_test=exp.x_test.numpy(),
            y_test=exp.y_test.numpy(),
        )
    else:
        if isinstance(times, np.ndarray):
            t = times
        elif times == "nan":
            t[3] = np.nan
        else:
            t[7] = 0.0
        _timed_file(tmp_path / "t0.npz", exp, t)
    folder = FolderStream(tmp_path, 10, poll_seconds=0.01, idle_timeout=0.0, timed=True)
    with pytest.raises(streams.StreamError, match=problem):
        folder.get(0)
    assert folder.ledger == []  # not taken: nothing of it learned


def test_a_file_from_before_the_last_one_is_refused_and_the_run_resumes_once_fixed(
    tmp_path, digits
):
    inbox, out = tmp_path / "inbox", tmp_path / "run"
    inbox.mkdir()
    _timed_file(inbox / "t0.npz", digits[0], 100.0 + np.arange(digits[0].n_train))
    _timed_file(inbox / "t1.npz", digits[1], np.arange(digits[1].n_train))
    with pytest.raises(streams.StreamError, match="t1.npz: its first example arrives at 0.0, bef"):
        _follow(inbox, out)
    _timed_file(inbox / "t1.npz", digits[1], 1e4 + np.arange(digits[1].n_train))
    summary = _follow(inbox, out)  # resumed after experience 0, which was kept
    assert summary["experiences_trained"] == 2 and summary["batches_learned"] > 0


def test_the_stream_times_clock_is_busy_from_arrival_and_checkpoints_as_such():
    clock = WallClock(interval=0.0, replayed=True, now=lambda: 5e9)  # this machine: ignored
    assert clock.arrive(100.0)
    clock.took(6.0, seconds=0.5)
    assert clock.busy_until == 100.5
    assert not clock.arrive(100.2) and clock.arrive(100.5)
    again = clock_from_dict(clock.to_dict())
    assert isinstance(again, WallClock) and again.replayed and again.busy_until == 100.5


@pytest.mark.parametrize("options", [{"wall_clock": True}, {"wall_clock": True, "follow": "inbox"}])
def test_the_wall_clock_needs_a_followed_folder_in_real_time(options):
    with pytest.raises(ConfigError, match="wall_clock .* needs --follow and --real-time"):
        RunConfig(**options).validate()


def test_a_served_folder_refuses_the_wall_clock_flag_it_has_already(tmp_path, capsys):
    """``serve``'s real time is in seconds already (when the log takes each batch): the flag
    is refused in one line, before any folder is made."""
    from lifelong import cli

    (tmp_path / "inbox").mkdir()
    args = ["serve", "--follow", str(tmp_path / "inbox"), "--real-time", "--wall-clock"]
    code = cli.main([*args, "--out", str(tmp_path / "served"), "--port", "0"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--wall-clock is run --follow's" in err and not (tmp_path / "served").exists()
