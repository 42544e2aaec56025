"""What a compare writes and prints: the per-method table (mean ± std over seeds),
results.json/.csv, comparison.png and compute.png, and the speed ratios the goals speak of."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lifelong import metrics
from lifelong.learner import compute


def aggregate(results: list[dict]) -> list[dict]:
    """Mean and std over seeds per method, in the order methods first appear."""
    keys = (
        "average_accuracy",
        "forgetting_chaudhry2018",
        "bwt_lopezpaz2017",
        "seconds",
        "samples_per_second",
        "gradient_steps_per_example",
        "flops_per_example",
    )
    rows = []
    for m in dict.fromkeys(r["method"] for r in results):
        rs = [r for r in results if r["method"] == m]
        row = {"method": m, "seeds": len(rs)}
        for k in keys:
            v = np.array([r.get(k) for r in rs], float)  # results from before: no FLOPs
            row[k], row[k + "_std"] = float(v.mean()), float(v.std())
        # measures some rows lack: online and near-future accuracy Cumulative's and
        # GDumb's (and rows published before Avalanche's were measured under late labels
        # and real time); the learned share, where the stream waits and labels at once
        for k in ("online_accuracy", "min_acc", *OPTIONAL):
            v = np.array([r.get(k) for r in rs], float)
            known = v[~np.isnan(v)]
            row[k] = float(known.mean()) if len(known) else None
            row[k + "_std"] = float(known.std()) if len(known) else None
        rows.append(row)
    return rows


OPTIONAL = ("near_future_accuracy", "learned_share")  # measures some protocols lack


def markdown_table(rows: list[dict]) -> str:
    """One row per method, with near-future accuracy where it was measured, and under late
    labels or a stream that does not wait the share of the stream's batches each learned."""
    near = any(r.get("near_future_accuracy") is not None for r in rows)
    timed = any(r.get("learned_share") is not None for r in rows)
    extra = (" near-future accuracy |" if near else "") + (" learned share |" if timed else "")
    lines = [
        "| method | avg accuracy | forgetting (Chaudhry) | BWT | min-ACC | online accuracy |"
        f"{extra} steps/ex | MFLOPs/ex | train s | samples/s |",
        "|---|---|---|---|---|---|" + "---|" * (near + timed) + "---|---|---|---|",
    ]
    for r in rows:

        def ms(k, fmt, r=r):
            if r.get(k) is None:
                return "-"  # not measured for this method (see compare/online.py)
            return metrics.mean_std(r[k], r[k + "_std"], r["seeds"], fmt)

        cells = f" {ms('near_future_accuracy', '.3f')} |" if near else ""
        cells += f" {ms('learned_share', '.2f')} |" if timed else ""
        lines.append(
            f"| {r['method']} | {ms('average_accuracy', '.3f')} | "
            f"{ms('forgetting_chaudhry2018', '.3f')} | {ms('bwt_lopezpaz2017', '+.3f')} "
            f"| {ms('min_acc', '.3f')} | {ms('online_accuracy', '.3f')} |{cells} "
            f"{r['gradient_steps_per_example']:.2f} | {r['flops_per_example'] / 1e6:.1f} "
            f"| {r['seconds']:.1f} | {r['samples_per_second'] or 0:.0f} |"
        )
    return "\n".join(lines)


def write_outputs(
    results: list[dict],
    stream_name: str,
    memory: int,
    out: Path,
    label_delay: int = 0,
    eval_every: int = 0,
) -> None:
    """results.json/.csv, table.md and the plots of one compare (``label_delay``: how many
    batches late every method's labels came; ``eval_every``: every how many updates each
    method was evaluated, 0 for experience ends alone)."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = aggregate(results)
    record = {
        "stream": stream_name,
        "memory": memory,
        "label_delay": label_delay,
        "eval_every": eval_every,
        "runs": results,
        "summary": rows,
        "speed_ratios": speed_ratios(results),
    }
    (out / "results.json").write_text(
        json.dumps(metrics.json_ready(record), indent=2, default=lambda v: None)
    )
    fields = [
        "method",
        "seed",
        "average_accuracy",
        "forgetting_chaudhry2018",
        "bwt_lopezpaz2017",
        "min_acc",
        "wc_acc",
        "online_accuracy",
        *OPTIONAL,
        "gradient_steps_per_example",
        "flops_per_example",
        "seconds",
        "samples_per_second",
    ]
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(results)
    (out / "table.md").write_text(markdown_table(rows) + "\n")
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(rows)), 4), dpi=110)
    x = np.arange(len(rows))
    ax.bar(
        x - 0.2,
        [r["average_accuracy"] for r in rows],
        0.4,
        yerr=[r["average_accuracy_std"] for r in rows],
        label="average accuracy",
    )
    ax.bar(
        x + 0.2,
        [r["forgetting_chaudhry2018"] for r in rows],
        0.4,
        yerr=[r["forgetting_chaudhry2018_std"] for r in rows],
        label="forgetting (Chaudhry)",
    )
    ax.set_xticks(x, [r["method"] for r in rows], rotation=30, ha="right")
    lowest = min(
        [0.0] + [r["forgetting_chaudhry2018"] - r["forgetting_chaudhry2018_std"] for r in rows]
    )
    ax.set_ylim(lowest - 0.05, 1.02)  # negative forgetting (a later gain) shows below zero
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("method")
    ax.set_ylabel("accuracy / forgetting")
    late = f", labels {label_delay} batches late" if label_delay else ""
    ax.set_title(f"{stream_name}, memory {memory}{late}, mean ± std over seeds")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "comparison.png")
    plt.close(fig)
    compute.plot_accuracy_against_compute(
        rows, f"{stream_name}, memory {memory}{late}", out / "compute.png"
    )


SPEED_PAIRS = (
    ("ours", "replay"),
    ("ours-1x", "replay"),
    ("ours-lamaml", "lamaml"),
    ("ours-lamaml-1x", "lamaml"),
)


def speed_ratios(results: list[dict]) -> list[dict]:
    """Throughput ratios the speed goals speak of, where both sides ran: the ratio of mean
    samples/s, and its spread over seeds (each seed's ours / theirs). On a short stream one
    run takes under a second, and the spread shows how far a single run can be trusted."""
    sps: dict[str, dict[int, float]] = {}
    for r in results:
        sps.setdefault(r["method"], {})[r["seed"]] = r["samples_per_second"]
    out = []
    for ours, theirs in SPEED_PAIRS:
        if ours in sps and theirs in sps:
            a, b = sps[ours], sps[theirs]
            per_seed = [a[s] / b[s] for s in sorted(a.keys() & b.keys())]
            out.append(
                {
                    "ours": ours,
                    "theirs": theirs,
                    "ratio": float(np.mean(list(a.values())) / np.mean(list(b.values()))),
                    "per_seed_min": min(per_seed, default=None),
                    "per_seed_max": max(per_seed, default=None),
                }
            )
    return out


def ratio_note(results: list[dict]) -> str:
    """``speed_ratios`` as one line for the terminal."""
    notes = []
    for r in speed_ratios(results):
        note = f"{r['ours']} / {r['theirs']} samples/s: {r['ratio']:.2f}x"
        if r["per_seed_min"] is not None and r["per_seed_min"] != r["per_seed_max"]:
            note += f" (per seed {r['per_seed_min']:.2f}-{r['per_seed_max']:.2f}x)"
        notes.append(note)
    return "; ".join(notes)
