"""Reports render real PNGs with the expected curves; `lifelong compare` runs end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import streams
from lifelong.cli import main
from lifelong.config import RunConfig
from lifelong.runner import run

# process-spawning and whole-run tests: `make test-fast` leaves them out
pytestmark = pytest.mark.slow

TAB10 = {"blue": (31, 119, 180), "orange": (255, 127, 14)}


def _pixels_near(img: np.ndarray, rgb, tol: int = 30) -> int:
    return int((np.abs(img[..., :3].astype(int) - np.array(rgb)).max(axis=-1) < tol).sum())


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "run"
    cfg = RunConfig(
        stream="split-digits",
        experiences=2,
        memory=100,
        eval_every=20,
        progress=False,
        learned_rates=False,
    )
    return run(cfg, out, echo=lambda m: None)


def test_forgetting_curve_png(small_run):
    path = small_run.report["forgetting_curves"]
    img = np.asarray(Image.open(path).convert("RGB"))
    assert img.shape[0] >= 300 and img.shape[1] >= 500
    assert img.std() > 10  # not blank
    # one curve per experience from the end of its training: tab10 blue (exp 0) a line
    # through experience 1, orange (exp 1) the one point after it was trained
    assert _pixels_near(img, TAB10["blue"]) > 200
    assert 10 < _pixels_near(img, TAB10["orange"]) < 200
    lines = (small_run.run_dir / "metrics.jsonl").read_text().splitlines()
    events = [json.loads(x) for x in lines]
    assert sum(e["type"] == "curve" for e in events) >= 5  # finer than experience ends


def test_curves_start_where_each_experience_was_trained(small_run):
    from lifelong.report import experience_curves, load_run

    curves, ends = experience_curves(load_run(small_run.run_dir)["events"])
    assert sorted(curves) == [0, 1] and len(ends) == 2
    assert curves[0][0][0] == ends[0]  # not the ramp from the untrained model
    assert [p for p, _ in curves[1]] == [ends[1]]


def test_the_legend_names_the_classes_each_experience_held(small_run):
    from lifelong.report import _experience_label, load_run

    events = load_run(small_run.run_dir)["events"]
    for j, exp in enumerate(streams.get_stream("split-digits", experiences=2, seed=0)):
        held = ", ".join(str(c) for c in exp.classes)
        assert _experience_label(j, events) == f"experience {j} (classes {held})"
    assert _experience_label(0, [{"type": "experience_end", "experience": 0}]) == "experience 0"


def test_matrix_png_and_html_links(small_run):
    img = np.asarray(Image.open(small_run.report["accuracy_matrix"]).convert("RGB"))
    assert img.std() > 10
    page = small_run.report["html"].read_text()
    assert "src='forgetting_curves.png'" in page and "src='accuracy_matrix.png'" in page
    assert "forgetting (Chaudhry 2018" in page and "summary.json" in page
    # what ran, each controller by its own name, and the config itself
    assert "method <b>der++</b>, 5 update(s) per batch of 10" in page
    assert "prediction controller on, La-MAML learned rates off" in page
    assert "[learner]" in page and "memory = 100" in page
    # what the agent remembers: a row per class of its stored examples
    assert "src='memory.png'" in page
    grid = np.asarray(Image.open(small_run.report["memory"]).convert("L"))
    assert grid.shape[0] > grid.shape[1] / 2 and grid.std() > 20


def test_report_command_overlays_runs(small_run, tmp_path, capsys):
    cfg = RunConfig(
        stream="split-digits",
        experiences=2,
        memory=100,
        progress=False,
        learned_rates=False,
        seed=3,
    )
    other = run(cfg, tmp_path / "other", echo=lambda m: None)
    out = tmp_path / "both"
    assert main(["report", str(small_run.run_dir), str(other.run_dir), "--out", str(out)]) == 0
    table = json.loads((out / "runs_compared.json").read_text())
    assert set(table) == {"run", "other"}
    # the keys that tell the runs apart, in the table, the page and what was printed
    assert table["run"]["settings"] == {"eval_every": 20, "seed": 0}
    assert table["other"]["settings"] == {"eval_every": 0, "seed": 3}
    assert "Settings that differ" in (out / "index.html").read_text()
    assert "  other: eval_every=0, seed=3" in capsys.readouterr().out
    img = np.asarray(Image.open(out / "runs_compared.png").convert("RGB"))
    assert _pixels_near(img, TAB10["blue"]) > 100 and _pixels_near(img, TAB10["orange"]) > 100


def test_report_keeps_same_named_runs_apart_and_labels_other_streams(small_run, tmp_path):
    """Two folders both called `run` are two entries; a run of another stream is labelled
    as such in the table, the legend's title and the page."""
    cfg = RunConfig(
        stream="rotated-digits", experiences=2, memory=100, progress=False, learned_rates=False
    )
    other = run(cfg, tmp_path / "b" / "run", echo=lambda m: None)
    out = tmp_path / "both"
    assert main(["report", str(small_run.run_dir), str(other.run_dir), "--out", str(out)]) == 0
    table = json.loads((out / "runs_compared.json").read_text())
    assert len(table) == 2
    assert sorted(v["stream"] for v in table.values()) == ["rotated-digits", "split-digits"]
    assert "different streams" in (out / "index.html").read_text()


def test_compare_two_strategies_on_two_experiences(tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(
        [
            "compare",
            "--stream",
            "split-digits",
            "--experiences",
            "2",
            "--seeds",
            "0-1",
            "--methods",
            "ours,replay",
            "--memory",
            "100",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "| ours |" in text and "| replay |" in text and "samples/s" in text
    assert " ± " in text and "± +" not in text and "± -" not in text  # a spread has no sign
    results = json.loads((out / "results.json").read_text())
    assert len(results["runs"]) == 4
    for r in results["runs"]:
        assert np.array(r["matrix"]).shape == (2, 2)
        assert 0.0 <= r["average_accuracy"] <= 1.0
    assert (out / "results.csv").read_text().count("\n") == 5
    assert (out / "comparison.png").stat().st_size > 5000
    # the speed ratio, with its spread over seeds: the ratio of means lies within it
    (speed,) = results["speed_ratios"]
    assert (speed["ours"], speed["theirs"]) == ("ours", "replay")
    sps = {(r["method"], r["seed"]): r["samples_per_second"] for r in results["runs"]}
    per_seed = [sps["ours", s] / sps["replay", s] for s in (0, 1)]
    assert speed["per_seed_min"] == pytest.approx(min(per_seed), rel=1e-4)
    assert speed["per_seed_max"] == pytest.approx(max(per_seed), rel=1e-4)
    assert speed["per_seed_min"] <= speed["ratio"] <= speed["per_seed_max"]
    assert f"ours / replay samples/s: {speed['ratio']:.2f}x (per seed" in text

    # run again into the same folder with fewer methods: our run starts afresh (a finished
    # run folder of the last compare is neither resumed nor reported again), and the rows
    # not rerun (replay, and ours on seed 1) are kept, not dropped
    args = ["compare", "--stream", "split-digits", "--experiences", "2", "--seeds", "0"]
    before = (out / "ours-seed0" / "summary.json").stat().st_mtime_ns
    assert (
        main([*args, "--methods", "ours", "--memory", "100", "--out", str(out), "--no-progress"])
        == 0
    )
    assert (out / "ours-seed0" / "summary.json").stat().st_mtime_ns > before
    again = json.loads((out / "results.json").read_text())
    assert sorted((r["method"], r["seed"]) for r in again["runs"]) == [
        ("ours", 0),
        ("ours", 1),
        ("replay", 0),
        ("replay", 1),
    ]
    # another memory budget into the same folder is refused, not mixed
    capsys.readouterr()
    assert main([*args, "--methods", "ours", "--memory", "30", "--out", str(out)]) == 2
    assert "not split-digits at memory 30" in capsys.readouterr().err


def test_forward_flops_of_the_mlp_are_its_products():
    from lifelong.learner.compute import forward_flops
    from lifelong.learner.models import build_model

    mlp = build_model("mlp", (1, 28, 28), 10, 100)
    assert forward_flops(mlp, (1, 28, 28)) == 2 * (784 * 100 + 100 * 100 + 100 * 10)


def test_a_budget_names_whole_updates_per_batch():
    from lifelong.compare import ours_overrides

    assert ours_overrides("ours@0.2", 10) == {"iters": 2}
    assert ours_overrides("ours@1.0", 10) == {"iters": 10}
    assert ours_overrides("ours-1x", 10) == {
        "iters": 1,
        "replay_batch": 10,
        "lr": 0.3,
        "grad_clip": 1.0,
    }
    with pytest.raises(ValueError, match="not a whole number of updates"):
        ours_overrides("ours@0.15", 10)
    with pytest.raises(ValueError, match="not a number of steps"):
        ours_overrides("ours@fast", 10)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--compute", "0.15"], "0.15 steps per example is not a whole number of updates"),
        (["--compute", "fast"], "'fast' is not a number of steps per example"),
        (["--compute", "0"], "0.0 steps per example is not one update per batch of 10 or more"),
        (["--compute", "nan"], "nan steps per example is not one update per batch"),
        (["--compute", "inf"], "inf steps per example is not one update per batch"),
        (["--methods", "replay,dreamer"], "unknown method(s) ['dreamer']"),
        (["--methods", "ours-controller"], "(ours-controller is now ours-lamaml)"),
        (["--methods", "nomod:Nope"], "cannot load method 'nomod:Nope'"),
    ],
)
def test_compare_refuses_a_bad_budget_or_method_in_one_line(tmp_path, capsys, flags, message):
    args = ["compare", "--stream", "split-digits", "--out", str(tmp_path / "c"), *flags]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "c" / "results.json").exists()


def test_compare_runs_a_users_method_under_its_own_name(tmp_path, capsys):
    """A user's method is a row of its own (--methods package.module:Class), and a --config
    naming one runs it in the "ours" row under its name, with its [method] settings."""
    mine = "tests.method_helpers:Smooth"
    (tmp_path / "mine.toml").write_text(f'method = "{mine}"\nsmoothing = 0.2\n')
    common = ["compare", "--stream", "split-digits", "--experiences", "2", "--seeds", "0"]
    common += ["--memory", "50", "--no-progress"]
    out = tmp_path / "a"
    assert main([*common, "--methods", f"{mine},ours", "--out", str(out)]) == 0
    rows = json.loads((out / "results.json").read_text())["runs"]
    assert sorted(r["method"] for r in rows) == sorted([mine, "ours"])
    table = capsys.readouterr().out
    assert f"| {mine} |" in table and "±" not in table  # one seed: no spread to show
    out = tmp_path / "b"
    config = ["--config", str(tmp_path / "mine.toml")]
    assert main([*common, *config, "--methods", "ours", "--out", str(out)]) == 0
    (row,) = json.loads((out / "results.json").read_text())["runs"]
    assert row["method"] == mine
    (folder,) = [p for p in out.iterdir() if p.name.endswith("-seed0")]
    assert "smoothing = 0.2" in (folder / "config.toml").read_text()


def test_compare_counts_compute_the_same_way_for_everyone(tmp_path, capsys):
    """ours at two budgets and Avalanche's Replay: steps and FLOPs per example, counted for
    ours by the agent and for Replay by hooks on its model and optimizer, agree with what
    each does (Replay: one step per batch of 10 over 10 incoming + 10 replayed rows)."""
    import math

    from lifelong.learner.compute import BACKWARD_FACTOR, forward_flops
    from lifelong.learner.models import build_model

    out = tmp_path / "cmp"
    args = ["compare", "--stream", "split-digits", "--experiences", "2", "--memory", "100"]
    assert main([*args, "--methods", "replay", "--compute", "0.1,0.2", "--out", str(out)]) == 0
    assert "steps/ex | MFLOPs/ex" in capsys.readouterr().out
    runs = {r["method"]: r for r in json.loads((out / "results.json").read_text())["runs"]}
    assert list(runs) == ["ours@0.1", "ours@0.2", "replay"]  # ours first, by budget
    stream = streams.get_stream("split-digits", experiences=2)
    sizes = [e.n_train for e in stream]
    n, batches = sum(sizes), sum(math.ceil(s / 10) for s in sizes)
    steps = {m: r["gradient_steps_per_example"] for m, r in runs.items()}  # 6 decimals
    assert steps["replay"] == pytest.approx(batches / n, rel=1e-4)
    assert steps["ours@0.1"] == pytest.approx(batches / n, rel=1e-4)
    assert steps["ours@0.2"] == pytest.approx(2 * batches / n, rel=1e-4)
    f = forward_flops(build_model("mlp", stream.input_shape, 10, 100), stream.input_shape)
    # Replay trains each incoming row once and 10 replayed rows per step after the first
    # experience (its buffer fills at the experience's end); forward-only rows: none
    replay_rows = n + 10 * math.ceil(sizes[1] / 10)
    assert runs["replay"]["flops_per_example"] == pytest.approx(
        BACKWARD_FACTOR * replay_rows * f / n, rel=0.02
    )
    # twice the updates; the controller's forward of each batch is paid once either way
    flops = {m: r["flops_per_example"] for m, r in runs.items()}
    assert 1.5 * flops["ours@0.1"] < flops["ours@0.2"] < 2 * flops["ours@0.1"]
    assert (out / "compute.png").stat().st_size > 10_000


def test_avalanche_gets_a_head_per_task_on_task_incremental_streams():
    """Like for like with our task masks: on split-task, Avalanche's strategies train
    Avalanche's multi-head classifier; a task without a head yet has no accuracy (NaN)."""
    from avalanche.models import MultiTaskModule

    from lifelong.compare import baseline_model, run_baseline

    stream = streams.get_stream("split-task-digits", experiences=3)
    assert isinstance(baseline_model(stream, 100), MultiTaskModule)
    assert not isinstance(baseline_model(streams.get_stream("split-digits"), 100), MultiTaskModule)
    cfg = RunConfig(experiences=3)
    for name in ("der++", "lwf"):  # DER asks for logits without task labels, LwF for all heads
        r = run_baseline(name, "split-task-digits", 0, 100, cfg)
        R = np.array(r["matrix"])
        assert np.isnan(R[0, 1:]).all() and np.isnan(R[1, 2])  # no head yet for later tasks
        assert np.isfinite(R[-1]).all() and R[-1].mean() > 0.8  # 2-4 classes a head


def test_an_older_compare_folders_rows_are_read_as_this_version_writes_them(tmp_path):
    """Rows an earlier version wrote (a method since renamed, no min-ACC) come back under
    the present name, with min-ACC and WC-ACC from their matrix's experience ends."""
    from lifelong.compare.earlier import earlier_runs
    from lifelong.errors import ConfigError

    matrix = [[0.9, 0.0], [0.6, 0.8]]
    old = {"method": "ours-controller", "seed": 0, "matrix": matrix, "untrained": [0.1, 0.1]}
    record = {"stream": "split-digits", "memory": 60, "label_delay": 0, "runs": [old]}
    (tmp_path / "results.json").write_text(json.dumps(record))
    (row,) = earlier_runs(tmp_path, ("split-digits", 60, 0, 0))
    assert row["method"] == "ours-lamaml"
    assert row["min_acc"] == pytest.approx(0.6) and row["wc_acc"] == pytest.approx(0.7)
    with pytest.raises(ConfigError, match="evaluated every 5 updates"):
        earlier_runs(tmp_path, ("split-digits", 60, 0, 5))
    record["runs"] = [{"method": "replay", "seed": 0}]  # no matrix: not ours to merge
    (tmp_path / "results.json").write_text(json.dumps(record))
    with pytest.raises(ConfigError, match="is not a compare's results"):
        earlier_runs(tmp_path, ("split-digits", 60, 0, 0))
    record["runs"] = [{**old, "seed": "0"}]  # a seed that is not an integer cannot be merged
    (tmp_path / "results.json").write_text(json.dumps(record))
    with pytest.raises(ConfigError, match="is not a compare's results"):
        earlier_runs(tmp_path, ("split-digits", 60, 0, 0))
    (tmp_path / "results.json").write_text("[1, 2]")  # JSON, but no compare's record
    with pytest.raises(ConfigError, match="is not a compare's results"):
        earlier_runs(tmp_path, ("split-digits", 60, 0, 0))
