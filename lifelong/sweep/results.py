"""A sweep's results: one row per trial (CSV, JSON), mean +- std over seeds per
configuration (Markdown table), and accuracy and forgetting against each swept key, per
method and stream (PNG)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from lifelong import metrics

METRICS = (
    "average_accuracy",
    "forgetting_chaudhry2018",
    "bwt_lopezpaz2017",
    "online_accuracy",
    "near_future_accuracy",  # trials on named streams (a followed folder has none)
    "learned_share",
    "samples_per_second",
    "train_seconds",
)


def aggregate(rows: list[dict]) -> list[dict]:
    """Mean and std over seeds per (stream, configuration), finished trials only."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r.get("status") == "ok":
            groups.setdefault((r["stream"], r["configuration"]), []).append(r)
    out = []
    for (stream, configuration), rs in groups.items():
        row = {
            "stream": stream,
            "configuration": configuration,
            "method": rs[0]["method"],
            "params": rs[0]["params"],
            "seeds": len(rs),
        }
        for k in METRICS:
            v = np.array([r[k] for r in rs if r.get(k) is not None], float)
            row[k] = float(v.mean()) if len(v) else None
            row[k + "_std"] = float(v.std()) if len(v) else None
        out.append(row)
    return sorted(out, key=lambda r: (r["stream"], -(r["average_accuracy"] or 0)))


def _cell(row: dict, key: str) -> str:
    return metrics.mean_std(row[key], row[key + "_std"], row["seeds"])


def markdown_table(summary: list[dict], failed: list[dict]) -> str:
    lines = [
        "| stream | configuration | seeds | avg accuracy | forgetting (Chaudhry) | samples/s |",
        "|---|---|---|---|---|---|",
    ]
    for r in summary:
        lines.append(
            f"| {r['stream']} | {r['configuration']} | {r['seeds']} | "
            f"{_cell(r, 'average_accuracy')} | {_cell(r, 'forgetting_chaudhry2018')} | "
            f"{r['samples_per_second']:.0f} |"
        )
    for f in failed:
        lines.append(
            f"| {f['stream']} | {f['configuration']} seed {f['seed']} | failed | {f['error']} | | |"
        )
    return "\n".join(lines)


def write(
    rows: list[dict], swept: dict[str, list[str]], out: Path, name: str, plots: bool = True
) -> dict:
    """results.json / results.csv / table.md / sweep-STREAM.png; the paths written."""
    rows = sorted(rows, key=lambda r: r["trial"])
    summary = aggregate(rows)
    failed = [r for r in rows if r.get("status") != "ok"]
    record = {"name": name, "trials": rows, "summary": summary, "swept": swept}
    (out / "results.json").write_text(json.dumps(metrics.json_ready(record), indent=2))
    keys = sorted({k for ks in swept.values() for k in ks})
    fields = ["trial", "status", "method", "stream", "seed", "memory", *keys, *METRICS, "error"]
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    table = markdown_table(summary, failed)
    (out / "table.md").write_text(table + "\n")
    paths = {"results": str(out / "results.json"), "table": str(out / "table.md")}
    for stream in sorted({r["stream"] for r in summary}) if plots else ():
        png = _plot(rows, swept, stream, out / f"sweep-{stream}.png")
        if png:
            paths[f"plot {stream}"] = png
    return paths


def _plot(rows: list[dict], swept: dict[str, list[str]], stream: str, path: Path) -> str | None:
    """One row of panels per method with swept keys, one panel per key: accuracy and
    forgetting (mean and std over seeds and the other keys) against the key's values."""
    panels = [(m, k) for m, ks in swept.items() for k in ks]
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for m in swept if swept[m]]
    width = max(len(swept[m]) for m in methods)
    fig, axes = plt.subplots(
        len(methods), width, figsize=(3.6 * width, 2.8 * len(methods)), dpi=110, squeeze=False
    )
    for i, method in enumerate(methods):
        mine = [r for r in rows if r["method"] == method and r["stream"] == stream]
        mine = [r for r in mine if r.get("status") == "ok"]
        for j in range(width):
            ax = axes[i][j]
            if j >= len(swept[method]):
                ax.axis("off")
                continue
            key = swept[method][j]
            values = sorted({r["params"][key] for r in mine}, key=_order)
            x = np.arange(len(values))
            for metric, label in (
                ("average_accuracy", "accuracy"),
                ("forgetting_chaudhry2018", "forgetting"),
            ):
                per = [[r[metric] for r in mine if r["params"][key] == v] for v in values]
                ax.errorbar(
                    x,
                    [np.mean(p) for p in per],
                    yerr=[np.std(p) for p in per],
                    marker="o",
                    capsize=3,
                    label=label,
                )
            ax.set_xticks(x, [str(v) for v in values])
            ax.set_xlabel(key)
            ax.set_title(f"{method}: {key}", fontsize=9)
            ax.grid(alpha=0.3)
            if i == 0 and j == 0:
                ax.legend(fontsize=8)
    fig.suptitle(f"{stream}\n(mean ± std over seeds and other keys)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return str(path)


def _order(v):
    return (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))
