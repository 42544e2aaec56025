"""Continual evaluation (De Lange et al., ICLR 2023): with ``--eval-every`` a run's min-ACC
and WC-ACC take every curve point, not only the experience ends; the stability gap right
after a boundary then shows in them."""

from __future__ import annotations

import json

import pytest

from lifelong import metrics
from lifelong.config import RunConfig
from lifelong.runner import run
from tests.run_helpers import quiet


def test_eval_every_refines_min_acc_from_the_curve_points(tmp_path):
    cfg = RunConfig(stream="split-digits", experiences=3, seed=0, memory=60, progress=False)
    coarse = run(cfg, tmp_path / "ends", echo=quiet)
    fine = run(RunConfig(**{**cfg.to_dict(), "eval_every": 3}), tmp_path / "fine", echo=quiet)
    assert (coarse.matrix == fine.matrix).all()  # evaluating changes nothing learned
    ends = json.loads((tmp_path / "ends" / "summary.json").read_text())["summary"]
    s = json.loads((tmp_path / "fine" / "summary.json").read_text())["summary"]
    assert ends["min_acc"] == pytest.approx(metrics.summary(coarse.matrix)["min_acc"], abs=1e-6)
    # the curve points are more evaluations after each boundary: the worst can only be lower
    assert s["min_acc"] <= ends["min_acc"] and 0 < s["min_acc"] < 1
    events = [json.loads(x) for x in (tmp_path / "fine" / "metrics.jsonl").read_text().splitlines()]
    points = [(e["experience"], e["accuracies"]) for e in events if e["type"] == "curve"]
    points += [(i, list(row)) for i, row in enumerate(fine.matrix)]
    worst = [min(row[j] for i, row in points if i > j) for j in (0, 1)]
    assert s["min_acc"] == pytest.approx(sum(worst) / 2, abs=1e-6)
    k = 3
    assert s["wc_acc"] == pytest.approx(
        fine.matrix[-1][-1] / k + (1 - 1 / k) * s["min_acc"], abs=1e-6
    )

    # the report aligns the points at each boundary: the stability gap's own plot and JSON
    from lifelong.report import write_report

    paths = write_report(tmp_path / "fine")
    gap = json.loads((tmp_path / "fine" / "report" / "stability_gap.json").read_text())
    assert paths["stability_gap"].stat().st_size > 10_000
    assert [g["boundary"] for g in gap["boundaries"]] == [1, 2]
    after_first = [e for e in events if e["type"] == "curve" and e["experience"] == 1]
    first = gap["boundaries"][0]["points"]
    assert len(first) == 1 + len(after_first) + 1  # the boundary, the points, the next end
    assert first[1][1] == pytest.approx(after_first[0]["accuracies"][0] - fine.matrix[0][0])
    assert gap["deepest_drop"] == pytest.approx(
        -min(p[2] for g in gap["boundaries"] for p in g["points"])
    )
    assert "stability_gap" not in write_report(tmp_path / "ends")  # ends only: no gap to see


def test_compare_eval_every_refines_every_methods_min_acc(tmp_path, capsys):
    """compare --eval-every: our agent's min-ACC is its run's (the curve points), and an
    Avalanche strategy's is refined the same way by a plugin in its loop evaluating every
    N iterations (one per minibatch), off its time and meter: the same matrix and compute
    as unmeasured, and a min-ACC that can only be lower than its experience ends give."""
    from lifelong.cli import main
    from lifelong.compare import run_baseline

    out = tmp_path / "c"
    args = ["compare", "--stream", "split-digits", "--experiences", "3", "--seeds", "0"]
    args += ["--methods", "ours,replay", "--memory", "60", "--eval-every", "4"]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    record = json.loads((out / "results.json").read_text())
    assert record["eval_every"] == 4  # the json says how its min-ACC was measured
    runs = {r["method"]: r for r in record["runs"]}
    alone = dict(stream="split-digits", experiences=3, seed=0, memory=60, progress=False)
    ran = run(RunConfig(**alone, eval_every=4), tmp_path / "o", echo=quiet)
    assert runs["ours"]["min_acc"] == pytest.approx(ran.summary["min_acc"], abs=1e-9)
    for r in runs.values():
        ends = metrics.summary(r["matrix"])
        assert r["min_acc"] <= ends["min_acc"] and r["wc_acc"] <= ends["wc_acc"] + 1e-9
    assert runs["replay"]["min_acc"] < metrics.summary(runs["replay"]["matrix"])["min_acc"]
    # rows from experience ends are not mixed into a folder of refined ones, and the
    # refusal comes before any run (our run folder is not redone)
    plain_args = [a for a in args if a not in ("--eval-every", "4")]
    ours_summary = out / "ours-seed0" / "summary.json"
    before = ours_summary.stat().st_mtime_ns
    assert main([*plain_args, "--out", str(out), "--no-progress"]) == 2
    assert "evaluated every 4 updates, not" in capsys.readouterr().err
    assert ours_summary.stat().st_mtime_ns == before

    cfg = RunConfig(experiences=3, progress=False)
    seen = run_baseline("naive", "split-digits", 0, 60, RunConfig(**alone, eval_every=4))
    plain = run_baseline("naive", "split-digits", 0, 60, cfg, online=False)
    assert seen["matrix"] == plain["matrix"]
    assert seen["compute_units_per_batch"] == plain["compute_units_per_batch"]
    import streams

    minibatches = sum(
        -(-e.n_train // 10) for e in streams.get_stream("split-digits", experiences=3)
    )
    assert seen["evaluations"] == minibatches // 4
    assert "evaluations" not in plain and "min_acc" not in plain  # the matrix's, in compare
