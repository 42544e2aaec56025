"""What a run publishes: ``accuracy_matrix.csv`` and ``summary.json`` (at every experience end
and when it stops), the report, and the one-screen summary ``lifelong run`` prints."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lifelong import metrics
from lifelong.runner.wall_clock import clock_from_dict
from stores.files import write_atomic


@dataclass
class RunResult:
    """What a run gives back: its numbers, and the trained agent and its memory to use.

    ``result.agent`` is the agent of the run's last checkpoint, loaded on first use (with a
    read-only view of the run's store): ``predict``, ``accuracy``, ``keys`` (an example's
    memory key); ``result.memory()`` opens that store read-only (``search``, ``sample``,
    ``fetch``)."""

    run_dir: Path
    matrix: np.ndarray  # rows: after experience i; columns: test set j (NaN: not known yet)
    untrained: list[float]
    summary: dict
    interrupted: bool = False
    report: dict = field(default_factory=dict)
    stop_signal: int = 2  # what stopped an interrupted run: the exit code is 128 + it
    load_agent: Callable[[], Any] | None = field(default=None, repr=False, compare=False)

    @functools.cached_property
    def agent(self) -> Any:
        """The trained ``Agent``, from the run folder's last checkpoint."""
        if self.load_agent is None:
            raise AttributeError("this result was not made by lifelong.run: it has no agent")
        return self.load_agent()

    def memory(self):
        """The run's episodic store, read-only (``with result.memory() as mem: ...``)."""
        from stores import EpisodicStore

        return EpisodicStore.open(self.run_dir / "memory", readonly=True)


def publish(cfg, run_dir, progress, agent, status: str) -> tuple[np.ndarray, dict]:
    """Write accuracy_matrix.csv and summary.json as of now, each atomically: at every
    experience end (``status`` "running") and when the run stops, so a live run folder can
    be read, and reported on, at any moment."""
    R = metrics.matrix_from_rows(progress.rows)
    summary: dict = {"status": status}
    if len(R):
        summary.update(metrics.summary(R, progress.untrained))
        # continual evaluation (De Lange et al. 2023): each earlier experience at its worst
        # since learned, at every --eval-every point and experience end
        summary["min_acc"] = metrics.min_acc(progress.lowest, len(R))
        summary["wc_acc"] = metrics.wc_acc(R, progress.lowest)
    seconds = progress.train_seconds
    summary.update(
        {
            "examples": agent.examples,
            "gradient_steps": agent.grad_steps,
            "gradient_steps_per_example": agent.grad_steps / max(agent.examples, 1),
            "flops_per_example": agent.flops_per_example,
            "online_accuracy": agent.online_accuracy,
            "train_seconds": seconds,
            "samples_per_second": agent.examples / seconds if seconds else None,
            "complete": progress.done,
            "memories": len(agent.memory),
            # times the weight average fell behind the live weights and started again
            "average_restarts": agent.average.restarts if agent.average is not None else None,
        }
    )
    if progress.clock is not None:  # near-future accuracy; in real time, every batch's answer
        clock = clock_from_dict(progress.clock).summary(agent)
        summary.update(clock)
        if "online_accuracy_all_batches" in clock:
            summary["online_accuracy"] = clock["online_accuracy_all_batches"]
    header = ["after_experience"] + [f"exp_{j}" for j in range(R.shape[1] if len(R) else 0)]
    lines = [",".join(header)] + [
        ",".join([str(i)] + ["" if np.isnan(v) else f"{v:.6f}" for v in row])
        for i, row in enumerate(R)
    ]
    write_atomic(run_dir / "accuracy_matrix.csv", "\n".join(lines) + "\n", durable=False)
    record = {
        "summary": summary,
        "matrix": R.tolist(),
        "untrained": progress.untrained,
        "config": cfg.to_dict(),
    }
    write_atomic(
        run_dir / "summary.json", json.dumps(metrics.json_ready(record), indent=2), durable=False
    )
    return R, summary


def finish(cfg, run_dir, progress, agent, interrupted) -> RunResult:
    from lifelong import report

    status = "complete" if progress.done else "stopped"
    R, summary = publish(cfg, run_dir, progress, agent, status)
    paths = report.write_report(run_dir) if len(R) else {}
    return RunResult(run_dir, R, progress.untrained, summary, interrupted, paths)


def format_summary(result: RunResult) -> str:
    """The one-screen summary printed at the end of ``lifelong run``."""
    R, s = result.matrix, result.summary
    out = []
    if len(R):
        out.append("accuracy matrix (row: after experience i, column: test set of experience j)")
        out.append("      " + " ".join(f"{j:>6}" for j in range(R.shape[1])))
        for i, row in enumerate(R):
            out.append(f"{i:>5} " + " ".join("     -" if np.isnan(v) else f"{v:6.3f}" for v in row))
        out.append("")
        out.append(f"average accuracy           {s['average_accuracy']:.4f}")
        out.append(f"forgetting (Chaudhry 2018) {s['forgetting_chaudhry2018']:.4f}")
        out.append(f"BWT (Lopez-Paz 2017)       {s['bwt_lopezpaz2017']:+.4f}")
        if s.get("fwt_lopezpaz2017") is not None:
            out.append(f"FWT (Lopez-Paz 2017)       {s['fwt_lopezpaz2017']:+.4f}")
    if s.get("online_accuracy") is not None:
        online = s["online_accuracy"]
        out.append(f"online accuracy            {online:.4f} (each batch, before learning it)")
    if s.get("learned_share") is not None:  # the real-time protocol
        out.append(
            f"batches learned            {s['batches_learned']} of {s['batches_revealed']} "
            f"({s['learned_share']:.1%}: the stream did not wait; the rest were answered)"
        )
    if s.get("near_future_accuracy") is not None:
        out.append(
            f"near-future accuracy       {s['near_future_accuracy']:.4f} (the batch after the "
            "arriving one, predicted before learning it)"
        )
    out.append(f"gradient steps per example {s['gradient_steps_per_example']:.2f}")
    if s.get("flops_per_example") is not None:
        out.append(f"training FLOPs per example {s['flops_per_example'] / 1e6:.1f} M")
    if s.get("samples_per_second"):
        out.append(
            f"training throughput        {s['samples_per_second']:.0f} examples/s "
            f"({s['train_seconds']:.1f} s)"
        )
    out.append(f"results in {result.run_dir}  (summary.json, accuracy_matrix.csv, metrics.jsonl)")
    if "forgetting_curves" in result.report:
        out.append(f"forgetting curves: {result.report['forgetting_curves']}")
    if "html" in result.report:
        out.append(f"report: {result.report['html']}")
    return "\n".join(out)


def completed(run_dir: Path, progress: dict) -> RunResult | None:
    """A finished run's result from what it wrote when it finished (summary.json and its
    report), without rebuilding the agent; None unless the checkpoint and summary.json both
    say it is complete and the report is there."""
    try:
        record = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    summary = record.get("summary", {}) if isinstance(record, dict) else {}
    report = {
        "forgetting_curves": run_dir / "report" / "forgetting_curves.png",
        "accuracy_matrix": run_dir / "report" / "accuracy_matrix.png",
        "html": run_dir / "report" / "index.html",
    }
    whole = summary.get("complete") is True and all(p.exists() for p in report.values())
    if not (whole and progress.get("done") and record.get("matrix")):
        return None
    R = np.array(record["matrix"], dtype=float)
    return RunResult(run_dir, R, record.get("untrained") or [], summary, False, report)
