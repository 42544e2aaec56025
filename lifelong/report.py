"""Pictures and a one-page HTML report of one run, or of several runs side by side."""

from __future__ import annotations

import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lifelong.run_folder import read_events  # noqa: E402

SUMMARY_ROWS = [
    ("average_accuracy", "average accuracy"),
    ("learning_accuracy", "learning accuracy"),
    ("forgetting_chaudhry2018", "forgetting (Chaudhry 2018: max earlier - last)"),
    ("forgetting_avalanche", "forgetting (Avalanche: just-trained - last)"),
    ("bwt_lopezpaz2017", "BWT (Lopez-Paz 2017; Avalanche's BWT)"),
    ("fwt_lopezpaz2017", "FWT (Lopez-Paz 2017, vs untrained)"),
    ("gradient_steps_per_example", "gradient steps per example"),
    ("samples_per_second", "training examples / s"),
]


def load_run(run_dir: str | Path) -> dict:
    """summary.json plus the curve points of metrics.jsonl."""
    run_dir = Path(run_dir)
    path = run_dir / "summary.json"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} has no summary.json: is it a lifelong run folder?")
    data = json.loads(path.read_text())
    events = read_events(run_dir / "metrics.jsonl")  # whole, valid lines only
    data["events"] = events
    data["name"] = run_dir.name
    return data


def curve_points(events: list[dict]) -> tuple[list[int], list[list[float]], list[int]]:
    """(positions, accuracies per point, experience-end positions) in stream order."""
    xs, ys, ends = [], [], []
    for e in events:
        if e["type"] == "untrained":
            xs.append(0)
            ys.append(e["accuracies"])
        elif e["type"] in ("curve", "experience_end"):
            xs.append(e["position"])
            ys.append(e["accuracies"])
            if e["type"] == "experience_end":
                ends.append(e["position"])
    return xs, ys, ends


def plot_forgetting_curves(run: dict, path: Path) -> Path:
    xs, ys, ends = curve_points(run["events"])
    width = max((len(y) for y in ys), default=0)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    cmap = plt.get_cmap("tab10" if width <= 10 else "tab20")
    for j in range(width):
        pts = [(x, y[j]) for x, y in zip(xs, ys) if len(y) > j]
        ax.plot(
            [p[0] for p in pts],
            [p[1] for p in pts],
            marker="o",
            ms=3,
            color=cmap(j % cmap.N),
            label=f"experience {j}",
        )
    for end in ends[:-1]:
        ax.axvline(end, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("training examples seen (dashed: experience boundaries)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"Forgetting curves: {run['name']}")
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_matrix(run: dict, path: Path) -> Path:
    R = np.array([[np.nan if v is None else v for v in row] for row in run["matrix"]], float)
    fig, ax = plt.subplots(figsize=(1 + 0.6 * R.shape[1], 1 + 0.5 * R.shape[0]), dpi=110)
    im = ax.imshow(R, vmin=0, vmax=1, cmap="viridis")
    for i in range(R.shape[0]):
        for j in range(R.shape[1]):
            if not np.isnan(R[i, j]):
                ax.text(
                    j,
                    i,
                    f"{R[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if R[i, j] < 0.6 else "black",
                )
    ax.set_xlabel("test set of experience j")
    ax.set_ylabel("after training experience i")
    ax.set_title("Accuracy matrix R[i][j]")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _summary_table(runs: list[dict]) -> str:
    head = "".join(f"<th>{html.escape(r['name'])}</th>" for r in runs)
    rows = []
    for key, label in SUMMARY_ROWS:
        cells = []
        for r in runs:
            v = r["summary"].get(key)
            cells.append("<td>-</td>" if v is None else f"<td>{v:.4g}</td>")
        rows.append(f"<tr><th>{html.escape(label)}</th>{''.join(cells)}</tr>")
    return f"<table><tr><th>metric</th>{head}</tr>{''.join(rows)}</table>"


def _page(title: str, body: str) -> str:
    style = (
        "body{font-family:sans-serif;max-width:1000px;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:right}img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
        f"</title><style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
        f"{body}</body></html>"
    )


def write_report(run_dir: str | Path) -> dict:
    """report/forgetting_curves.png, report/accuracy_matrix.png and report/index.html."""
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    out = run_dir / "report"
    out.mkdir(exist_ok=True)
    curves = plot_forgetting_curves(run, out / "forgetting_curves.png")
    matrix = plot_matrix(run, out / "accuracy_matrix.png")
    cfg = run.get("config", {})
    body = (
        f"<p>stream <b>{html.escape(str(cfg.get('follow') or cfg.get('stream')))}</b>, "
        f"seed {cfg.get('seed')}, memory {cfg.get('memory')}, controller "
        f"{'on' if cfg.get('controller') else 'off'}</p>"
        f"{_summary_table([run])}"
        f"<h2>Forgetting curves</h2><img src='{curves.name}' alt='forgetting curves'>"
        f"<h2>Accuracy matrix</h2><img src='{matrix.name}' alt='accuracy matrix'>"
        "<p>Machine-readable: <a href='../summary.json'>summary.json</a>, "
        "<a href='../accuracy_matrix.csv'>accuracy_matrix.csv</a>, "
        "<a href='../metrics.jsonl'>metrics.jsonl</a></p>"
    )
    page = out / "index.html"
    page.write_text(_page(f"lifelong run: {run['name']}", body))
    return {"forgetting_curves": curves, "accuracy_matrix": matrix, "html": page}


def write_comparison(run_dirs: list[str | Path], out: str | Path) -> dict:
    """Several runs side by side: average accuracy along the stream, and their summaries."""
    runs = [load_run(d) for d in run_dirs]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for r in runs:
        xs, ys, _ = curve_points(r["events"])
        seen = [e["experience"] for e in r["events"] if e["type"] != "untrained"]
        avg = [float(np.mean(y[: s + 1])) for y, s in zip(ys[1:], seen)]
        ax.plot(xs[1:], avg, marker="o", ms=3, label=r["name"])
    ax.set_xlabel("training examples seen")
    ax.set_ylabel("mean accuracy over experiences seen")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Runs compared")
    fig.tight_layout()
    png = out / "runs_compared.png"
    fig.savefig(png)
    plt.close(fig)
    table = {r["name"]: r["summary"] for r in runs}
    (out / "runs_compared.json").write_text(json.dumps(table, indent=2))
    page = out / "index.html"
    page.write_text(
        _page(
            "lifelong: runs compared",
            _summary_table(runs) + f"<img src='{png.name}' alt='runs compared'>",
        )
    )
    return {"plot": png, "json": out / "runs_compared.json", "html": page}
