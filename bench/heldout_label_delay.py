"""Issue #27's label-delay goal where nothing was tuned: the held-out checks of
``bench/heldout.py`` (other seeds of a README stream, and shipped streams the README does
not show), every method given labels 10 batches late. Each check is one ``lifelong compare
--label-delay 10`` of every method; the table is the README's late-labels table for them,
written to ``docs/results/heldout-label-delay.{json,md}``.

    python bench/heldout_label_delay.py            # run every check, then the table
    python bench/heldout_label_delay.py --table    # the table from the folders already run

rotated-mnist5k's seeds 5-9 (40,000 examples) run only with ``--with-rotated``.
"""

from __future__ import annotations

from pathlib import Path

from heldout_real_time import checks_table, compare_each, main
from results_readme import against_best_avalanche, best_answer, cell

ROOT = Path(__file__).resolve().parents[1]
DELAY = 10
METHODS = "ours,ours-1x,naive,replay,er-ace,der++,lamaml,mer,a-gem,gdumb,ewc,lwf,cumulative"
HEADER = (
    "| stream | ours | best Avalanche (not Cumulative) | margin (in its std) "
    "| Cumulative (all data) | min-ACC: ours / DER++ | online accuracy: ours / best Avalanche |\n"
    "|---|---|---|---|---|---|---|"
)


def folder(stream: str, seeds: str) -> Path:
    return ROOT / "runs" / "heldout-label-delay" / f"{stream}-seeds-{seeds}"


def run_checks(checks: list[tuple[str, str]], jobs: int) -> None:
    compare_each(checks, jobs, folder, "--methods", METHODS, "--label-delay", str(DELAY))


def late_row(name: str, summary: list[dict]) -> str:
    """One line: ours, the best Avalanche strategy apart from Cumulative and the margin in
    the larger std, Cumulative, min-ACC against DER++'s, online accuracy on arrival: ours and
    the best Avalanche strategy's."""
    rows = {r["method"]: r for r in summary}
    ours, (best, lead, stds) = rows["ours"], against_best_avalanche(rows)
    return (
        f"| {name} | {cell(ours)} | {best['method']} {cell(best)} | {lead:+.3f} ({stds:.1f}) "
        f"| {cell(rows['cumulative'])} | {ours['min_acc']:.3f} / {rows['der++']['min_acc']:.3f} "
        f"| {ours['online_accuracy']:.3f} / {best_answer(rows)} |"
    )


def table(checks: list[tuple[str, str]]) -> str:
    return checks_table(
        "heldout_label_delay",
        HEADER,
        late_row,
        lambda stream, seeds: folder(stream, seeds) / "results.json",
        checks,
    )


if __name__ == "__main__":
    main(__doc__, run_checks, table)
