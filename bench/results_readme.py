"""The README's results section, from docs/results/compare-*.json (``make results`` writes
them): a summary across streams, then each stream's full table.

    python bench/results_readme.py > /tmp/results.md
    python bench/results_readme.py --real-time       # the real-time table (rate 1)
    python bench/results_readme.py --label-delay 10  # the late-labels table
    python bench/results_readme.py --online          # online accuracy, waiting / real time
    python bench/results_readme.py --near-future     # near-future accuracy, the same
    python bench/results_readme.py --stability-gap   # min-ACC every 10 updates, ours / DER++

"""

from __future__ import annotations

import json
from pathlib import Path

from lifelong.compare.outputs import markdown_table

DOCS = Path(__file__).resolve().parents[1] / "docs" / "results"
STREAMS = {
    "split-mnist5k": "class-incremental, 5 experiences of 2 classes",
    "permuted-mnist5k": "domain-incremental, 10 experiences",
    "rotated-mnist5k": "domain-incremental, 5 rotations",
    "blurry-mnist5k": "task-free: boundaries hidden and blurred",
    "split-digits": "class-incremental, scikit-learn's 8x8 digits",
    "split-task-mnist5k": "task-incremental: Avalanche's strategies get a head per task",
}
AVALANCHE_AT_ONE_UPDATE = ("replay", "er-ace", "der++", "lamaml", "a-gem", "ewc", "lwf", "naive")


def cell(row: dict) -> str:
    return f"{row['average_accuracy']:.3f} ± {row['average_accuracy_std']:.3f}"


HEADER = (
    "| stream | ours (0.5 steps/ex) | ours-1x (0.1) | best Avalanche at 0.1 | lead, in its std "
    "| cumulative | ours forgetting |\n|---|---|---|---|---|---|---|"
)


def goal_row(name: str, summary: list[dict]) -> str:
    """One stream's line of the goals table: ours, ours-1x, the best Avalanche strategy at
    one update a batch, ours-1x's lead over it (in the larger of the two stds), Cumulative."""
    rows = {r["method"]: r for r in summary}
    best = max(
        (rows[m] for m in AVALANCHE_AT_ONE_UPDATE if m in rows),
        key=lambda r: r["average_accuracy"],
    )
    lead = rows["ours-1x"]["average_accuracy"] - best["average_accuracy"]
    stds = lead / max(best["average_accuracy_std"], rows["ours-1x"]["average_accuracy_std"])
    return (
        f"| {name} | {cell(rows['ours'])} | {cell(rows['ours-1x'])} | {best['method']} "
        f"{cell(best)} | {lead:+.3f} ({stds:+.1f}) | {cell(rows['cumulative'])} "
        f"| {rows['ours']['forgetting_chaudhry2018']:.3f} |"
    )


def written_table(stem: str, header: str, summaries: dict[str, list[dict]], row) -> str:
    """A goals table, a ``row(name, summary)`` line for each of ``summaries`` (name: its
    compare's summary rows), written to docs/results/STEM.md, its summaries to STEM.json."""
    text = "\n".join([header] + [row(name, summary) for name, summary in summaries.items()])
    DOCS.mkdir(parents=True, exist_ok=True)
    (DOCS / f"{stem}.json").write_text(json.dumps(summaries, indent=1) + "\n")
    (DOCS / f"{stem}.md").write_text(text + "\n")
    return text + "\n"


def against_best_avalanche(rows: dict[str, dict]) -> tuple[dict, float, float]:
    """The best Avalanche strategy apart from Cumulative (the all-data reference), ours'
    lead over it, and that lead in units of the larger of the two stds."""
    theirs = [r for m, r in rows.items() if not m.startswith("ours") and m != "cumulative"]
    best, ours = max(theirs, key=lambda r: r["average_accuracy"]), rows["ours"]
    lead = ours["average_accuracy"] - best["average_accuracy"]
    return best, lead, lead / max(best["average_accuracy_std"], ours["average_accuracy_std"], 1e-9)


REAL_TIME_HEADER = (
    "| stream | ours | best Avalanche (not Cumulative) | margin (in its std) "
    "| Cumulative (all data) | best ours@S | min-ACC: ours / DER++ | ours learned share |\n"
    "|---|---|---|---|---|---|---|---|"
)


def real_time_row(name: str, summary: list[dict]) -> str:
    """One line: ours, the best Avalanche strategy apart from Cumulative and the margin in
    the larger std, Cumulative, the best fixed budget, min-ACC against DER++'s."""
    rows = {r["method"]: r for r in summary}
    ours, (best, lead, stds) = rows["ours"], against_best_avalanche(rows)
    fixed = max(
        (r for m, r in rows.items() if m.startswith("ours@")), key=lambda r: r["average_accuracy"]
    )
    return (
        f"| {name} | {cell(ours)} | {best['method']} {cell(best)} | {lead:+.3f} ({stds:.1f}) "
        f"| {cell(rows['cumulative'])} | {fixed['method']} {cell(fixed)} "
        f"| {ours['min_acc']:.3f} / {rows['der++']['min_acc']:.3f} "
        f"| {ours['learned_share']:.2f} |"
    )


def real_time_table() -> None:
    """Each stream on a stream that does not wait, at rate 1 (docs/results/real-time-*.json)."""
    print(REAL_TIME_HEADER)
    for name in STREAMS:
        rows = json.loads((DOCS / f"real-time-{name}.json").read_text())["summary"]
        print(real_time_row(name, rows))


def late_labels_table(delay: int) -> None:
    """Each stream at label delay ``delay`` (docs/results/label-delay-D-*.json): ours, the
    best Avalanche strategy apart from Cumulative (the all-data reference), the margin in
    the larger std."""
    print(
        "| stream | ours | ours-1x | best Avalanche (not Cumulative) | margin (in its std) "
        "| Cumulative (all data) | online accuracy: ours / best Avalanche |"
        "\n|---|---|---|---|---|---|---|"
    )
    for name in STREAMS:
        path = DOCS / f"label-delay-{delay}-{name}.json"
        if not path.exists():
            continue
        rows = {r["method"]: r for r in json.loads(path.read_text())["summary"]}
        ours, (best, lead, stds) = rows["ours"], against_best_avalanche(rows)
        print(
            f"| {name} | {cell(ours)} | {cell(rows['ours-1x'])} | {best['method']} {cell(best)} "
            f"| {lead:+.3f} ({stds:.1f}) | {cell(rows['cumulative'])} "
            f"| {ours['online_accuracy']:.3f} / {best_answer(rows)} |"
        )


def best_answer(rows: dict[str, dict]) -> str:
    """The Avalanche strategy with the best online accuracy, and that accuracy ("-" where
    none was measured: results from before they were)."""
    theirs = [r for m, r in rows.items() if not m.startswith("ours") and r.get("online_accuracy")]
    if not theirs:
        return "-"
    best = max(theirs, key=lambda r: r["online_accuracy"])
    return f"{best['method']} {best['online_accuracy']:.3f}"


# the answers tables: every method that answers the stream as it comes; class-incremental first
ANSWERING = ("ours", "ours-1x", "naive", "replay", "er-ace", "der++", "lamaml", "mer", "a-gem")
ANSWERING += ("ewc", "lwf")
ANSWER_STREAMS = ("split-mnist5k", "split-digits", "blurry-mnist5k", "split-task-mnist5k")
ANSWER_STREAMS += ("permuted-mnist5k", "rotated-mnist5k")


def answers_table(key: str) -> None:
    """``key`` (online or near-future accuracy) of every method that answers the stream as it
    comes, each stream waiting / in real time (docs/results/online-{,real-time-}STREAM.json),
    the best of each column in bold."""
    columns, tops = {}, {}  # by (stream, protocol): its rows that answer, its best (3 places)
    for name in ANSWER_STREAMS:
        for protocol in ("", "real-time-"):
            path = DOCS / f"online-{protocol}{name}.json"
            rows = {r["method"]: r for r in json.loads(path.read_text())["summary"]}
            mine = {m: rows[m] for m in ANSWERING if rows[m].get(key) is not None}
            columns[name, protocol] = mine
            tops[name, protocol] = max(round(r[key], 3) for r in mine.values())
    print("| method | " + " | ".join(f"{s}: waiting / real time" for s in ANSWER_STREAMS) + " |")
    print("|---" * (len(ANSWER_STREAMS) + 1) + "|")
    for m in ANSWERING:
        cells = []
        for name in ANSWER_STREAMS:
            pair = []
            for protocol in ("", "real-time-"):
                rows = columns[name, protocol]
                if m not in rows:
                    pair.append("-")
                    continue
                text = f"{rows[m][key]:.3f} ± {rows[m][key + '_std']:.3f}"
                best = round(rows[m][key], 3) == tops[name, protocol]
                pair.append(f"**{text}**" if best else text)
            cells.append(" / ".join(pair))
        print(f"| {m} | " + " | ".join(cells) + " |")


def stability_gap_table(streams=("split-mnist5k", "split-digits", "blurry-mnist5k")) -> None:
    """Ours and DER++ evaluated every 10 updates (docs/results/eval-every-10-*.json): min-ACC
    from those points beside the experience ends' alone, and WC-ACC, waiting and in real time."""
    import numpy as np

    from lifelong import metrics

    print(
        "| stream | protocol | ours min-ACC: every 10 / ends | DER++ min-ACC: every 10 / ends "
        "| ours WC-ACC | DER++ WC-ACC |\n|---|---|---|---|---|---|"
    )
    for name in streams:
        for protocol, stem in (("waiting", ""), ("real time", "real-time-")):
            runs = json.loads((DOCS / f"eval-every-10-{stem}{name}.json").read_text())["runs"]
            cells = []
            for method in ("ours", "der++"):
                mine = [r for r in runs if r["method"] == method]
                low = np.array([r["min_acc"] for r in mine])
                ends = [
                    metrics.summary(np.array(r["matrix"]), r["untrained"])["min_acc"] for r in mine
                ]
                wc = np.array([r["wc_acc"] for r in mine])
                cells.append((f"{low.mean():.3f} ± {low.std():.3f} / {np.mean(ends):.3f}", wc))
            (ours, ours_wc), (der, der_wc) = cells
            print(
                f"| {name} | {protocol} | {ours} | {der} | {ours_wc.mean():.3f} ± "
                f"{ours_wc.std():.3f} | {der_wc.mean():.3f} ± {der_wc.std():.3f} |"
            )


def main() -> None:
    records = {s: json.loads((DOCS / f"compare-{s}.json").read_text()) for s in STREAMS}
    print(HEADER)
    for s, rec in records.items():
        print(goal_row(s, rec["summary"]))
    for s, rec in records.items():
        print(f"\n<details><summary><b>{s}</b> ({STREAMS[s]}): every method</summary>\n")
        print(markdown_table(rec["summary"]))
        ratios = "; ".join(  # against Replay: the strategy rerun beside ours (same sitting)
            f"{r['ours']} / {r['theirs']} samples/s {r['ratio']:.2f}x"
            for r in rec.get("speed_ratios", [])
            if r["theirs"] == "replay"
        )
        print(
            f"\n{ratios}. Plots: [accuracy and forgetting](docs/results/compare-{s}.png), "
            f"[accuracy against compute](docs/results/compute-{s}.png).\n\n</details>"
        )


if __name__ == "__main__":
    import sys

    if "--real-time" in sys.argv:
        real_time_table()
    elif "--label-delay" in sys.argv:
        late_labels_table(int(sys.argv[sys.argv.index("--label-delay") + 1]))
    elif "--online" in sys.argv:
        answers_table("online_accuracy")
    elif "--near-future" in sys.argv:
        answers_table("near_future_accuracy")
    elif "--stability-gap" in sys.argv:
        stability_gap_table()
    else:
        main()
