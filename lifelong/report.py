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
    ("min_acc", "min-ACC (De Lange 2023: earlier experiences at their worst since learned)"),
    ("wc_acc", "WC-ACC (De Lange 2023: 1/k last + (1 - 1/k) min-ACC)"),
    ("online_accuracy", "online accuracy (each batch, before learning it)"),
    ("near_future_accuracy", "near-future accuracy (the batch after the arriving one)"),
    ("learned_share", "batches learned of those revealed (real time: the stream did not wait)"),
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


def experience_curves(events: list[dict]) -> tuple[dict[int, list[tuple[int, float]]], list[int]]:
    """Each experience's forgetting curve: (stream position, accuracy) from the end of its
    own training on (not the ramp up from the untrained model), and the boundaries."""
    curves: dict[int, list[tuple[int, float]]] = {}
    ends = []
    for e in events:
        if e["type"] not in ("curve", "experience_end"):
            continue
        if e["type"] == "experience_end":
            ends.append(e["position"])
        trained = e["experience"] if e["type"] == "experience_end" else e["experience"] - 1
        for j, acc in enumerate(e["accuracies"][: trained + 1]):
            if acc is not None:
                curves.setdefault(j, []).append((e["position"], acc))
    return curves, ends


def plot_forgetting_curves(run: dict, path: Path) -> Path:
    curves, ends = experience_curves(run["events"])
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    cmap = plt.get_cmap("tab10" if len(curves) <= 10 else "tab20")
    for j, pts in sorted(curves.items()):
        ax.plot(
            [p[0] for p in pts],
            [p[1] for p in pts],
            marker="o",
            ms=3,
            color=cmap(j % cmap.N),
            label=_experience_label(j, run["events"]),
        )
    for end in ends[:-1]:
        ax.axvline(end, color="grey", ls="--", lw=0.8)
    values = [a for pts in curves.values() for _, a in pts]
    low = min(values, default=0.0)
    ax.set_ylim(max(0.0, low - 0.05), 1.0 + 0.01)  # the data's range, not always 0..1
    ax.set_xlabel("training examples seen (dashed: experience boundaries)")
    ax.set_ylabel("test accuracy of the experience")
    ax.set_title(f"Forgetting curves: {run['name']} (each from the end of its training)")
    if curves:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _experience_label(j: int, events: list[dict]) -> str:
    """ "experience 2 (classes 4, 5)" where the run recorded what it held (runs from before
    recorded nothing: "experience 2")."""
    for e in events:
        if e.get("type") == "experience_end" and e.get("experience") == j and e.get("classes"):
            shown = ", ".join(map(str, e["classes"][:6])) + (
                ", ..." if len(e["classes"]) > 6 else ""
            )
            return f"experience {j} (classes {shown})"
    return f"experience {j}"


def plot_matrix(run: dict, path: Path) -> Path:
    R = np.array([[np.nan if v is None else v for v in row] for row in run["matrix"]], float)
    if R.size:  # test sets not trained yet (j > i) are not forgetting: masked, not coloured
        R[np.triu_indices(R.shape[0], 1, R.shape[1])] = np.nan
    fig, ax = plt.subplots(figsize=(1.5 + 0.6 * R.shape[1], 1.2 + 0.5 * R.shape[0]), dpi=110)
    cmap = plt.get_cmap("viridis").with_extremes(bad="#eeeeee")
    im = ax.imshow(np.ma.masked_invalid(R), vmin=0, vmax=1, cmap=cmap)
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
    ax.set_title("Accuracy matrix R[i][j] (grey: not trained yet)")
    fig.colorbar(im, ax=ax, fraction=0.046, label="test accuracy")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _summary_table(runs: list[dict]) -> str:
    head = "".join(f"<th>{html.escape(r['name'])}</th>" for r in runs)
    rows = []
    for key, label in SUMMARY_ROWS:
        if all(r["summary"].get(key) is None for r in runs):
            continue  # a measure none of these runs has (the real-time ones, on a waiting run)
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
    """report/forgetting_curves.png, report/accuracy_matrix.png, report/stability_gap.png
    (with ``--eval-every``), report/memory.png (what the agent remembers) and
    report/index.html."""
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    out = run_dir / "report"
    out.mkdir(exist_ok=True)
    curves = plot_forgetting_curves(run, out / "forgetting_curves.png")
    matrix = plot_matrix(run, out / "accuracy_matrix.png")
    memory = _memory_picture(run_dir / "memory", out / "memory.png")
    gap = _stability_gap(run, out)
    cfg = run.get("config", {})
    remembered = (
        f"<h2>What the agent remembers</h2><img src='{memory.name}' alt='stored examples'>"
        if memory is not None
        else ""
    )
    body = (
        f"<p>{_what_ran(cfg)}</p>"
        f"{_summary_table([run])}"
        f"<h2>Forgetting curves</h2><img src='{curves.name}' alt='forgetting curves'>"
        f"<h2>Accuracy matrix</h2><img src='{matrix.name}' alt='accuracy matrix'>"
        + (
            f"<h2>Stability gap</h2><img src='{gap.name}' alt='stability gap'>"
            if gap is not None
            else ""
        )
        + f"{remembered}"
        f"<details><summary>The run's config</summary><pre>{html.escape(_config_text(run_dir))}"
        "</pre></details>"
        "<p>Machine-readable: <a href='../summary.json'>summary.json</a>, "
        "<a href='../accuracy_matrix.csv'>accuracy_matrix.csv</a>, "
        "<a href='../metrics.jsonl'>metrics.jsonl</a></p>"
    )
    page = out / "index.html"
    page.write_text(_page(f"lifelong run: {run['name']}", body))
    paths = {"forgetting_curves": curves, "accuracy_matrix": matrix, "html": page}
    paths |= {"stability_gap": gap} if gap is not None else {}
    return paths | ({"memory": memory} if memory is not None else {})


def _stability_gap(run: dict, out: Path) -> Path | None:
    """report/stability_gap.png and .json, for a run evaluated between experience ends
    (``--eval-every``); None for one evaluated only at their ends."""
    from lifelong import stability_gap

    gaps = stability_gap.around_boundaries(run["events"])
    if not gaps:
        return None
    record = {"deepest_drop": stability_gap.deepest_drop(gaps), "boundaries": gaps}
    (out / "stability_gap.json").write_text(json.dumps(record, indent=2))
    return stability_gap.plot(gaps, run["name"], out / "stability_gap.png")


def _what_ran(cfg: dict) -> str:
    """One line: the stream, seed, method (as resolved), updates per batch, model, memory and
    the two controllers, each by its own name."""
    from lifelong.learner.config import resolve

    method = resolve(cfg) if cfg else "?"
    return (
        f"stream <b>{html.escape(str(cfg.get('follow') or cfg.get('stream')))}</b>, seed "
        f"{cfg.get('seed')}, method <b>{html.escape(method)}</b>, {cfg.get('iters')} update(s) "
        f"per batch of {cfg.get('batch_size')}, model {html.escape(str(cfg.get('model')))}, "
        f"memory {cfg.get('memory')}; prediction controller "
        f"{'on' if cfg.get('gate') else 'off'}, La-MAML learned rates "
        f"{'on' if cfg.get('learned_rates') else 'off'}"
    )


def _config_text(run_dir: Path) -> str:
    try:
        return (run_dir / "config.toml").read_text()
    except OSError:
        return "(no config.toml)"


def _memory_picture(folder: Path, path: Path) -> Path | None:
    """The memory page's grid, read beside any writer; None without a readable store."""
    from lifelong.memory_pictures import plot_memory_grid
    from stores import EpisodicStore, StoreError

    if not (folder / "memory.sqlite").is_file():
        return None
    try:
        with EpisodicStore.open(folder, readonly=True) as store:
            return plot_memory_grid(store, path)
    except StoreError:
        return None


def _stream_of(run: dict) -> str:
    cfg = run.get("config", {})
    return str(cfg.get("follow") or cfg.get("stream"))


def _name_uniquely(runs: list[dict], dirs: list[Path]) -> None:
    """Runs whose folders share a name are told apart by their parent folders, so two
    ``seed0`` runs are two columns, not one merged entry."""
    names = [r["name"] for r in runs]
    for r, d in zip(runs, dirs):
        if names.count(r["name"]) > 1:
            r["name"] = str(d.resolve().relative_to(d.resolve().anchor))
    names = [r["name"] for r in runs]
    for i, r in enumerate(runs):
        if names.count(r["name"]) > 1:  # the same folder given twice
            r["name"] = f"{r['name']} [{i}]"


def write_comparison(run_dirs: list[str | Path], out: str | Path) -> dict:
    """Several runs side by side: average accuracy along the stream, and their summaries."""
    runs = [load_run(d) for d in run_dirs]
    _name_uniquely(runs, [Path(d) for d in run_dirs])
    streams = {
        str(r.get("config", {}).get("follow") or r.get("config", {}).get("stream")) for r in runs
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    for r in runs:
        xs, ys, _ = curve_points(r["events"])
        seen = [e["experience"] for e in r["events"] if e["type"] != "untrained"]
        avg = [float(np.mean(y[: s + 1])) for y, s in zip(ys[1:], seen)]
        label = r["name"] if len(streams) == 1 else f"{r['name']} ({_stream_of(r)})"
        ax.plot(xs[1:], avg, marker="o", ms=3, label=label)
    ax.set_xlabel("training examples seen")
    ax.set_ylabel("mean accuracy over experiences seen")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    ax.set_title(
        "Runs compared" if len(streams) == 1 else "Runs compared: DIFFERENT STREAMS, see legend"
    )
    fig.tight_layout()
    png = out / "runs_compared.png"
    fig.savefig(png)
    plt.close(fig)
    differ = differing_settings(runs)
    table = {
        r["name"]: {"stream": _stream_of(r), **r["summary"], "settings": differ[r["name"]]}
        for r in runs
    }
    (out / "runs_compared.json").write_text(json.dumps(table, indent=2))
    page = out / "index.html"
    page.write_text(
        _page(
            "lifelong: runs compared",
            (
                ""
                if len(streams) == 1
                else "<p><b>These runs are on different streams: "
                + html.escape(", ".join(sorted(streams)))
                + "</b>; their numbers are not comparable.</p>"
            )
            + _summary_table(runs)
            + _settings_table(differ)
            + f"<img src='{png.name}' alt='runs compared'>",
        )
    )
    return {"plot": png, "json": out / "runs_compared.json", "html": page}


def differing_settings(runs: list[dict]) -> dict[str, dict]:
    """Per run, the config keys whose values are not the same in every run compared (what
    tells the runs apart; the keys they share are left out)."""
    configs = {r["name"]: r.get("config", {}) for r in runs}
    keys = sorted({k for c in configs.values() for k in c})
    differ = [
        k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in configs.values()}) > 1
    ]
    return {name: {k: c.get(k) for k in differ} for name, c in configs.items()}


def _settings_table(differ: dict[str, dict]) -> str:
    keys = sorted({k for d in differ.values() for k in d})
    if not keys:
        return "<p>The runs' configs are the same.</p>"
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td>"
        + "".join(f"<td>{html.escape(str(d.get(k)))}</td>" for k in keys)
        + "</tr>"
        for name, d in differ.items()
    )
    return f"<h2>Settings that differ</h2><table><tr><th>run</th>{head}</tr>{rows}</table>"
