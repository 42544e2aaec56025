"""Sweeps: the file's checks, a local Ray sweep with two workers (a failing trial among
them), and a driver killed mid-sweep whose rerun ends with the results of an uninterrupted
sweep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import psutil
import pytest

from lifelong.config import ConfigError
from lifelong.sweep import driver, spec
from tests.serve_helpers import wait_until

SWEEP = """
[sweep]
streams = ["split-digits"]
seeds = "0-1"
memory = 100

[methods.ours]
fixed = { hidden = 32, checkpoint_every = 10 }
grid = { iters = [1, 2], distill = [0.5, 1.0] }
"""


def test_a_grid_names_every_trial_once():
    plan = spec.parse(spec.tomllib.loads(SWEEP), "t")
    assert len(plan.trials) == 8 and len({t.id for t in plan.trials}) == 8
    assert plan.swept == {"ours": ["distill", "iters"]}
    first = plan.trials[0]
    assert first.id == "ours_split-digits_seed0_distill=0.5_iters=1"
    assert first.run_config().hidden == 32 and first.run_config().memory == 100


def test_a_random_search_samples_the_grid_reproducibly():
    text = SWEEP.replace("memory = 100", 'memory = 100\nsearch = "random"\nsamples = 3')
    a = spec.parse(spec.tomllib.loads(text), "t")
    b = spec.parse(spec.tomllib.loads(text), "t")
    assert len(a.trials) == 6 and [t.id for t in a.trials] == [t.id for t in b.trials]


@pytest.mark.parametrize(
    "change, words",
    [
        (("iters = [1, 2]", "iterz = [1, 2]"), "unknown config key(s) ['iterz']"),
        (("iters = [1, 2]", "iters = [0, 2]"), "iters must be positive"),
        (("iters = [1, 2]", "seed = [1, 2]"), "set by [sweep]"),
        (("split-digits", "split-nothing"), "unknown stream 'split-nothing'"),
        (('seeds = "0-1"', 'seeds = "1-0"'), "range '1-0' is empty"),
        (("[methods.ours]", '[methods."der++"]'), "der++ has no setting(s)"),
        (("memory = 100", "memory = 0"), "memory must be a positive integer"),
        (("memory = 100", "memroy = 100"), "unknown [sweep] key(s) ['memroy']"),
        (("memory = 100", "memory = 100\ncpus_per_trial = 0"), "cpus_per_trial must be"),
        (("memory = 100", 'memory = 100\ndevice = "gpu"'), "unknown device 'gpu'"),
        (("memory = 100", 'memory = 100\ndevice = "cuda"'), "needs gpus_per_trial > 0"),
        (("memory = 100", "memory = 100\ngpus_per_trial = 0.5"), "never use"),
        (("iters = [1, 2]", 'device = ["cuda"]'), "set by [sweep]"),
        (
            ("[methods.ours]", '[methods."der++"]\ngrid = { alpha = ["x"] }\n[methods.o]'),
            "der++: alpha must be a number >= 0, got 'x'",
        ),
        (
            ("[methods.ours]", "[methods.replay]\ngrid = { mem_size = [1.5] }\n[methods.o]"),
            "mem_size must be a whole number > 0",
        ),
        (
            ("[methods.ours]", "[methods.ewc]\nfixed = { lr = -1 }\n[methods.o]"),
            "lr must be a number > 0",
        ),
        (("memory = 100", 'memory = 100\nname = "../../etc"'), "plain folder name"),
    ],
)
def test_a_bad_sweep_file_is_refused_naming_the_key(change, words):
    """A sweep file with a bad key or value (alpha = ["x"] for DER++, a name "../../etc", ...).
    Expect: refused before any trial starts, naming the key."""
    with pytest.raises(ConfigError) as err:
        spec.parse(spec.tomllib.loads(SWEEP.replace(*change)), "t")
    assert words in str(err.value)


def test_a_huge_grid_is_counted_and_refused_before_it_is_built():
    """A sweep grid of 10^9 points; random search with samples = 3 over 10^30 points.
    Expect: the grid refused at once naming its size and the cap; random search draws 3
    points without building the grid; --max-trials lifts the cap."""
    keys = ", ".join(f"k{i} = {list(range(10))}" for i in range(9))  # 10^9 points
    huge = SWEEP.replace("iters = [1, 2], distill = [0.5, 1.0]", keys)
    with pytest.raises(ConfigError) as err:
        spec.parse(spec.tomllib.loads(huge), "t")
    assert "2,000,000,000 trials" in str(err.value) and "cap of 10,000" in str(err.value)
    # random search draws its points by number: 3 of 10^30, and every value still checked
    keys = ", ".join(f"k{i} = {list(range(10))}" for i in range(30))
    text = SWEEP.replace("iters = [1, 2], distill = [0.5, 1.0]", keys)
    text = text.replace("memory = 100", 'memory = 100\nsearch = "random"\nsamples = 3')
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) \['k0', 'k1'"):
        spec.parse(spec.tomllib.loads(text), "t")
    text = SWEEP.replace("memory = 100", 'memory = 100\nsearch = "random"\nsamples = 3')
    text = text.replace("iters = [1, 2], distill = [0.5, 1.0]", "iters = [1, 2]")
    with pytest.raises(ConfigError, match="names 4 trials"):
        spec.parse(spec.tomllib.loads(text), "t", max_trials=3)
    assert len(spec.parse(spec.tomllib.loads(text), "t", max_trials=4).trials) == 4


def test_one_sweep_per_folder(tmp_path):
    """Start a sweep in a folder another sweep holds.
    Expect: refused naming the holder's pid; nothing written."""
    out = tmp_path / "sweep"
    out.mkdir()
    held, _ = driver.take_lock(out / driver.LOCK)
    plan = spec.parse(spec.tomllib.loads(SWEEP), "t")
    try:
        with pytest.raises(ConfigError, match=rf"another lifelong sweep \(pid {os.getpid()}\)"):
            driver.sweep(plan, out, jobs=1, progress=False, echo=lambda m: None)
    finally:
        driver.release_lock(held)
    assert not (out / driver.PLAN).exists()


def test_a_sweep_grids_a_users_method_settings():
    mine = 'fixed = { hidden = 32, method = "tests.method_helpers:Smooth" }'
    text = SWEEP.replace("fixed = { hidden = 32, checkpoint_every = 10 }", mine)
    grid = text.replace("iters = [1, 2], distill = [0.5, 1.0]", "smoothing = [0.0, 0.2]")
    plan = spec.parse(spec.tomllib.loads(grid), "t")
    assert sorted({t.run_config().method_options["smoothing"] for t in plan.trials}) == [0, 0.2]
    typo = text.replace("iters = [1, 2], distill = [0.5, 1.0]", "smoothng = [0.0, 0.2]")
    with pytest.raises(ConfigError, match=r"its settings: \['lr', 'smoothing'\]"):
        spec.parse(spec.tomllib.loads(typo), "t")


def test_the_sweeps_device_reaches_every_trial():
    text = SWEEP.replace("memory = 100", 'memory = 100\ndevice = "auto"\ngpus_per_trial = 0.25')
    plan = spec.parse(spec.tomllib.loads(text), "t")
    assert {t.device for t in plan.trials} == {"auto"} and plan.gpus_per_trial == 0.25
    assert plan.trials[0].run_config().device == "auto"
    assert "device" not in plan.trials[0].id  # the same numbers on any device


LOCAL = """
[sweep]
streams = ["split-digits"]
seeds = "0-1"
memory = 100
gpus_per_trial = 0.5
device = "auto"

[methods.ours]
fixed = { hidden = 32, checkpoint_every = 10 }
grid = { iters = [1, 2] }

[methods.exploding]
fixed = { hidden = 32, method = "tests.sweep_helpers:Exploding" }

[methods."der++"]
grid = { alpha = [0.3] }
"""


@pytest.mark.slow
def test_a_local_ray_sweep_reports_a_failing_trial_and_finishes_the_rest(tmp_path, capsys):
    from lifelong import cli

    (tmp_path / "s.toml").write_text(LOCAL)
    out = tmp_path / "out"
    code = cli.main(["sweep", str(tmp_path / "s.toml"), "--out", str(out), "--jobs", "2"])
    said = capsys.readouterr()
    assert code == 1 and "2 trial(s) failed" in said.err and "Ray ready in" in said.err
    assert "the cluster has no GPU" in said.err  # asked for, not there: not waited for
    rows = json.loads((out / "results.json").read_text())["trials"]
    assert len(rows) == 8
    failed = [r for r in rows if r["status"] == "failed"]
    assert {r["method"] for r in failed} == {"exploding"}
    assert all("explodes on purpose" in r["error"] for r in failed)
    assert all(r["average_accuracy"] > 0.5 for r in rows if r["status"] == "ok")
    table = (out / "table.md").read_text()
    assert "ours [iters=2]" in table and "der++ [alpha=0.3]" in table and "failed" in table
    assert (out / "sweep-split-digits.png").stat().st_size > 10_000
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 9 and csv_lines[0].startswith("trial,status,method")
    assert not (out / "ray.pids").exists()
    # lifelong report reads the sweep folder
    assert cli.main(["report", str(out)]) == 0
    assert "ours [iters=1]" in capsys.readouterr().out


@pytest.mark.slow
def test_a_killed_driver_reruns_to_the_results_of_an_uninterrupted_sweep(tmp_path):
    # one seed: four trials, two at a time, so the kill lands with some done and some not
    (tmp_path / "s.toml").write_text(SWEEP.replace('seeds = "0-1"', 'seeds = "0"'))
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "lifelong.cli", "sweep", str(tmp_path / "s.toml")]
    cmd += ["--out", str(out), "--jobs", "2", "--no-progress"]
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(cmd, stdout=log, stderr=log)
    done = lambda: len(list(out.glob("trials/*/result.json")))  # noqa: E731
    # Ray's start and a first trial: a ceiling for a machine busy with other work too
    wait_until(lambda: done() >= 1 or first.poll() is not None, 600, what="a first trial")
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert 1 <= done() < 4, "the kill must land mid-sweep"
    recorded = (out / "ray.pids").read_text().split()
    left = list(zip(recorded[::2], recorded[1::2]))
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "already finished" in rerun.stderr
    for pid, started in left:  # what Ray left running when its driver was killed: ended
        try:
            alive = abs(psutil.Process(int(pid)).create_time() - float(started)) < 0.01
        except psutil.NoSuchProcess:
            alive = False
        assert not alive, pid

    plan = spec.load(tmp_path / "s.toml")
    straight, _ = driver.sweep(plan, tmp_path / "straight", jobs=1, progress=False)
    killed = {r["trial"]: r for r in json.loads((out / "results.json").read_text())["trials"]}
    assert len(killed) == len(straight) == 4
    for row in straight:
        other = killed[row["trial"]]
        assert other["status"] == row["status"] == "ok"
        np.testing.assert_array_equal(np.array(other["matrix"]), np.array(row["matrix"]))
        assert other["average_accuracy"] == row["average_accuracy"]


@pytest.mark.slow
def test_compare_on_ray_gives_the_numbers_of_compare_in_process(tmp_path):
    from lifelong import compare
    from lifelong.config import RunConfig

    cfg = RunConfig(hidden=32, progress=False, tensorboard=False)
    args = ("split-digits", [0], ["ours-1x", "replay"], 100, cfg)
    here = compare.compare(*args, tmp_path / "here", jobs=1)
    on_ray = compare.compare(*args, tmp_path / "ray", jobs=2)
    assert [r["method"] for r in here] == [r["method"] for r in on_ray]
    for a, b in zip(here, on_ray):
        assert a["matrix"] == b["matrix"], a["method"]
